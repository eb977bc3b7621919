"""Every rendered object is valid: core kinds with kubernetes-validate --strict for Kubernetes
1.34, custom resources against the CRD schemas under tests/data/crds/ (see the README there)."""
from __future__ import annotations

import copy
import os
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from controller.k8s import render, routes, tenants
from policies.kubernetes import KubernetesPolicy
from controller.k8s.settings import KubernetesSettings
from controller.traffic.base import Backend, RouteSpec
from tests.support.published_schemas import published_schema_errors
from tests.unit.crd_schema import crd_version_schema

KUBERNETES_VERSION = "1.34.0"
CRDS = Path(__file__).parents[1] / "data" / "crds"
SCHEMAS = {"HTTPRoute": "httproute.v1.schema.yaml", "InferencePool": "inferencepool.v1.schema.yaml",
           "ScaledObject": "scaledobject.v1alpha1.schema.yaml", "ReferenceGrant": "referencegrant.v1beta1.schema.yaml"}
SPEC = RouteSpec("Org_Model-AWQ", (Backend("stable", "http://s", "5"), Backend("candidate", "http://c", "7")),
                 {"stable": 95.0, "candidate": 5.0}, mirror_to="candidate", mirror_percent=50)


def crd_validate(obj: dict) -> None:
    schema = yaml.safe_load((CRDS / SCHEMAS[obj["kind"]]).read_text())
    jsonschema.Draft202012Validator(schema).validate(obj)


def every_object(k: KubernetesSettings) -> list[dict]:
    objs = render.version_objects(k, "Org_Model-AWQ", "7", KubernetesPolicy(), "http://mlflow:5000")
    return objs + [routes.http_route(k, SPEC)]


SETTINGS = [KubernetesSettings(autoscaler=a, backend_kind=b, mirror_mode=m)
            for a in ("hpa", "keda") for b in ("service", "inference-pool")
            for m in ("relctl-gateway", "request-mirror", "off")]


@pytest.mark.parametrize("k", SETTINGS, ids=lambda k: f"{k.autoscaler}-{k.backend_kind}-{k.mirror_mode}")
def test_every_rendered_object_validates(k):
    kinds = []
    for obj in every_object(k):
        kinds.append(obj["kind"])
        if obj["kind"] in SCHEMAS:
            crd_validate(obj)
        else:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    assert kinds[:3] == ["Deployment", "Service", "PodDisruptionBudget"] and kinds[-1] == "HTTPRoute"
    assert ("ScaledObject" if k.autoscaler == "keda" else "HorizontalPodAutoscaler") in kinds
    assert ("InferencePool" in kinds) == (k.backend_kind == "inference-pool")


def test_strict_core_validation_rejects_a_misspelt_field():
    d = render.deployment(KubernetesSettings(), "m", "1", "http://mlflow")
    d["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinessProbes"):
        kubernetes_validate.validate(d, KUBERNETES_VERSION, strict=True)


def _broken(obj: dict, edit) -> dict:
    obj = copy.deepcopy(obj)
    edit(obj)
    return obj


K = KubernetesSettings(mirror_mode="request-mirror")
ROUTE = routes.http_route(K, SPEC)
POOL = render.inference_pool(K, "m", "1")
BROKEN = {
    "weight over the maximum": _broken(ROUTE, lambda o: o["spec"]["rules"][0]["backendRefs"][0].update(weight=10**7)),
    "Service ref without port": _broken(ROUTE, lambda o: o["spec"]["rules"][0]["backendRefs"][0].pop("port")),
    "misspelt backendRef field": _broken(ROUTE, lambda o: o["spec"]["rules"][0]["backendRefs"][0].update(wieght=1)),
    "mirror percent over 100": _broken(ROUTE, lambda o: o["spec"]["rules"][0]["filters"][0]["requestMirror"]
                                       .update(percent=150)),
    "duplicate pool ports": _broken(POOL, lambda o: o["spec"]["targetPorts"].append({"number": 8000})),
    "picker without port": _broken(POOL, lambda o: o["spec"]["endpointPickerRef"].pop("port")),
    "pool without selector": _broken(POOL, lambda o: o["spec"].pop("selector")),
}


@pytest.mark.parametrize("why", BROKEN)
def test_crd_schemas_reject_broken_objects(why):
    with pytest.raises(jsonschema.ValidationError):
        crd_validate(BROKEN[why])


def published_objects() -> list[dict]:
    """Every custom resource relctl renders or ships, for the upstream schemas below."""
    from tests.unit.test_k8s_deploy import manifests
    from tests.unit.test_k8s_tenants import TENANTS
    objs = [o for k in SETTINGS for o in every_object(k) if o["kind"] in ("HTTPRoute", "ScaledObject")]
    objs += [o for m in ("request-mirror", "off")
             for o in tenants.tenant_objects(KubernetesSettings(namespace="llm", mirror_mode=m), "bank-a",
                                             TENANTS["bank-a"]) if o["kind"] == "ReferenceGrant"]
    return objs + [o for o in manifests() if o["kind"] == "ServiceMonitor"]


def test_every_custom_resource_validates_against_the_upstream_schemas_published_on_npm():
    """HTTPRoute, ReferenceGrant, ScaledObject and ServiceMonitor against the schemas the Gateway API, KEDA
    and prometheus-operator projects generate from their API types (tests/k8s_schemas/package.json)."""
    objs = published_objects()
    assert {o["kind"] for o in objs} == {"HTTPRoute", "ReferenceGrant", "ScaledObject", "ServiceMonitor"}
    errors = published_schema_errors(objs)
    assert errors == [None] * len(objs), [(o["kind"], e) for o, e in zip(objs, errors) if e]


def test_the_upstream_schemas_reject_broken_objects():
    scaled = next(o for o in every_object(KubernetesSettings(autoscaler="keda")) if o["kind"] == "ScaledObject")
    broken = {"weight": BROKEN["weight over the maximum"], "percent": BROKEN["mirror percent over 100"],
              "minReplicaCount": _broken(scaled, lambda o: o["spec"].update(minReplicaCount="3")),
              "type": _broken(scaled, lambda o: o["spec"]["triggers"][0].pop("type"))}
    for field, error in zip(broken, published_schema_errors(list(broken.values()))):
        assert error and field in error, (field, error)       # rejected, naming the field


# The published CRD files themselves (see tests/data/crds/README.md): this workplace keeps fetched
# third-party files out of commits, so they are read from RELCTL_CRDS_DIR or shared/crds/ when there.
UPSTREAM = {"HTTPRoute": ("gateway.networking.k8s.io_httproutes.yaml", "v1"),
            "InferencePool": ("inference.networking.k8s.io_inferencepools.yaml", "v1"),
            "ScaledObject": ("keda.sh_scaledobjects.yaml", "v1alpha1")}
UPSTREAM_DIR = Path(os.environ.get("RELCTL_CRDS_DIR") or Path(__file__).parents[2] / "shared" / "crds")


@pytest.mark.skipif(not all((UPSTREAM_DIR / f).is_file() for f, _ in UPSTREAM.values()),
                    reason=f"the published CRD files are not in {UPSTREAM_DIR} (set RELCTL_CRDS_DIR)")
def test_every_rendered_custom_resource_validates_against_the_published_crds():
    schemas = {kind: crd_version_schema(UPSTREAM_DIR / f, v) for kind, (f, v) in UPSTREAM.items()}
    seen = set()
    for k in SETTINGS:
        for obj in every_object(k):
            if obj["kind"] in schemas:
                seen.add(obj["kind"])
                jsonschema.Draft202012Validator(schemas[obj["kind"]]).validate(obj)
    assert seen == set(UPSTREAM)
    with pytest.raises(jsonschema.ValidationError, match="wieght"):   # unknown fields are errors
        jsonschema.Draft202012Validator(schemas["HTTPRoute"]).validate(BROKEN["misspelt backendRef field"])
