"""relctl's own manifests (deploy/kustomize): valid core objects, settings that load, RBAC
that covers every object the backends touch."""
from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import yaml

from controller.k8s import render, routes
from controller.k8s.api import PLURALS
from policies.kubernetes import KubernetesPolicy
from controller.k8s.settings import KubernetesSettings
from controller.traffic.base import Backend, RouteSpec

DEPLOY = Path(__file__).parents[2] / "deploy" / "kustomize"
CRD_KINDS = {"ServiceMonitor"}


def manifests() -> list[dict]:
    docs = []
    for path in sorted(DEPLOY.rglob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_core_objects_validate_strictly_for_kubernetes_1_34():
    kinds = set()
    for doc in manifests():
        kinds.add(doc["kind"])
        if doc["kind"] not in CRD_KINDS:
            kubernetes_validate.validate(doc, "1.34.0", strict=True)
    assert {"Deployment", "Service", "Role", "RoleBinding", "ServiceAccount", "ConfigMap",
            "StatefulSet", "ServiceMonitor"} <= kinds


def test_the_settings_configmap_holds_valid_kubernetes_settings():
    cm = next(d for d in manifests() if d["kind"] == "ConfigMap")
    settings = yaml.safe_load(cm["data"]["settings.yaml"])
    assert (settings["pool"], settings["router"]) == ("kubernetes", "gateway-api")
    assert KubernetesSettings.model_validate(settings["kubernetes"]).in_cluster is True


def test_the_role_allows_every_object_the_backends_touch():
    role = next(d for d in manifests() if d["kind"] == "Role")
    allowed = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"]
               for r in rule["resources"] for v in rule["verbs"]}
    for k in (KubernetesSettings(autoscaler="keda", backend_kind="inference-pool"), KubernetesSettings()):
        objs = render.version_objects(k, "m", "1", KubernetesPolicy(), "http://mlflow")
        objs.append(routes.http_route(k, RouteSpec("m", (Backend("stable", "http://x", "1"),), {"stable": 100.0})))
        for obj in objs:
            group = obj["apiVersion"].rpartition("/")[0]
            for verb in ("get", "create", "patch", "delete"):   # an apply that creates is authorized as create
                assert (group, PLURALS[obj["kind"]], verb) in allowed, (obj["kind"], verb)
    for need in [("batch", "jobs", "get"), ("batch", "jobs", "create"), ("batch", "jobs", "patch"),
                 ("batch", "jobs", "delete"),
                 ("", "pods", "list"), ("", "events", "list"), ("apps", "deployments", "list"),
                 ("coordination.k8s.io", "leases", "create"), ("coordination.k8s.io", "leases", "update")]:
        assert need in allowed, need
