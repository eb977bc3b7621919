"""Tenants on Kubernetes: a tenant's model servers in its namespace, and a Role there holding exactly
what the pool does (checked against the calls the pool makes to the HTTP-level API stand-in)."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes import client as k8s

from controller.k8s import names, routes, tenants as k8s_tenants
from controller.k8s.api import KubeApi
from controller.k8s.cli import add_parser, render_yaml, run_tenants
from controller.k8s.settings import KubernetesSettings
from controller.pools.kubernetes import KubernetesPool
from controller.tenants import TenantSettings
from controller.traffic.base import Backend, RouteSpec
from controller.traffic.gateway_api import GatewayApiRouter
from policies.kubernetes import KubernetesPolicy
from tests.support.k8s_emulator import KubeEmulator
from tests.unit.test_k8s_validate import KUBERNETES_VERSION, crd_validate

TENANTS = {"bank-a": TenantSettings(models=["bank-chat"]),
           "clinic": TenantSettings(models=["clinic-chat"], namespace="clinic-llm")}
PATH = re.compile(r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)"
                  r"(?:/(?P<name>[^/]+))?$")


@pytest.mark.parametrize("k", [KubernetesSettings(),
                               KubernetesSettings(autoscaler="keda", backend_kind="inference-pool")],
                         ids=["hpa-service", "keda-inference-pool"])
def test_tenant_objects_are_valid_and_confined_to_the_tenant_namespace(k):
    objs = k8s_tenants.tenant_objects(k, "clinic", TENANTS["clinic"])
    assert [o["kind"] for o in objs] == ["Namespace", "ServiceAccount", "Role", "RoleBinding"]
    for obj in objs:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    ns, sa, role, binding = objs
    assert ns["metadata"]["name"] == "clinic-llm"
    assert {o["metadata"]["namespace"] for o in objs[1:]} == {"clinic-llm"}
    assert sa["automountServiceAccountToken"] is False            # model servers never call the API
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "relctl-pool"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "relctl-controller", "namespace": "relctl"}]
    granted = _granted(role["rules"])
    assert ("", "secrets", "get") not in granted and not any(r == "*" for _, r, _ in granted)
    assert any(r == "scaledobjects" for _, r, _ in granted) == (k.autoscaler == "keda")
    assert any(r == "inferencepools" for _, r, _ in granted) == (k.backend_kind == "inference-pool")


@pytest.mark.parametrize("k", [KubernetesSettings(namespace="llm"),
                               KubernetesSettings(namespace="llm", autoscaler="keda", backend_kind="inference-pool")],
                         ids=["hpa-service", "keda-inference-pool"])
def test_the_pool_works_in_the_tenant_namespace_with_exactly_the_roles_verbs(k):
    with KubeEmulator() as emu:
        clock = [1_800_000_000.0]
        pool = KubernetesPool(KubeApi(k8s.ApiClient(k8s.Configuration(host=emu.url)), timeout=5), k,
                              mlflow_uri="http://mlflow:5000", clock=lambda: clock[0], tenants=TENANTS,
                              policy_for=lambda model: KubernetesPolicy(standby_seconds=60))
        served = pool.ensure("bank-chat", "2", Path("/unused"))
        name = names.version_name("bank-chat", "2")
        assert served.url == f"http://{name}.relctl-bank-a.svc.cluster.local:8000"
        dep = emu.get(f"/apis/apps/v1/namespaces/relctl-bank-a/deployments/{name}")
        assert dep["spec"]["template"]["spec"]["serviceAccountName"] == "relctl-pool"
        emu.put(f"/api/v1/namespaces/relctl-bank-a/pods/{name}-5d9f7-abcde", _crash_looping(name, "relctl-bank-a"))
        assert pool.status("bank-chat", "2").state == "failed"           # reads pods, then events
        pool.retire("bank-chat", "2")                                     # hot standby
        clock[0] += 120
        assert pool.reap_standbys() == [("bank-chat", "2")]              # found in the tenant's namespace
        pool.ensure("bank-chat", "3", Path("/unused"))
        pool.stop_all()
        assert emu.get(f"/apis/apps/v1/namespaces/relctl-bank-a/deployments/{names.version_name('bank-chat', '3')}") \
            is None
        tenant_calls = [c for c in emu.calls if PATH.match(c.path)["ns"] == "relctl-bank-a"]
        other = {PATH.match(c.path)["ns"] for c in emu.calls} - {"relctl-bank-a"}
    assert other == {"llm", "clinic-llm"}                                # stop_all's and reap's listings only
    used = {_needs(c.method, PATH.match(c.path)) for c in tenant_calls}
    used |= {(g, r, "create") for g, r, v in used if v == "patch"}       # apply that creates is authorized as create
    role = k8s_tenants.tenant_objects(k, "bank-a", TENANTS["bank-a"])[2]
    assert _granted(role["rules"]) == used                               # all it needs, nothing more


def test_a_model_of_no_tenant_stays_in_the_pool_namespace():
    k = KubernetesSettings(namespace="llm")
    assert k8s_tenants.for_model(k, TENANTS, "other") is k
    assert k8s_tenants.for_model(k, TENANTS, "clinic-chat").namespace == "clinic-llm"


def test_render_puts_a_tenant_model_in_its_namespace_after_its_tenant_objects(tmp_path, capsys):
    config = tmp_path / "relctl.yaml"
    config.write_text(yaml.safe_dump({"tenants": {n: t.model_dump(exclude_none=True) for n, t in TENANTS.items()}}))
    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers(dest="command"))
    args = p.parse_args(["k8s", "render", "--model", "bank-chat", "--version", "2", "--config", str(config)])
    docs = list(yaml.safe_load_all(render_yaml(args)))
    assert [d["kind"] for d in docs] == ["Namespace", "ServiceAccount", "Role", "RoleBinding", "Deployment",
                                         "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "HTTPRoute"]
    assert {d["metadata"]["namespace"] for d in docs[1:8]} == {"relctl-bank-a"}
    for doc in docs[:8]:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    args = p.parse_args(["k8s", "tenants", "--config", str(config)])
    assert run_tenants(args) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [(d["kind"], d["metadata"].get("namespace", d["metadata"]["name"])) for d in docs if d["kind"] != "Role"
            and d["kind"] != "RoleBinding"] == [("Namespace", "relctl-bank-a"), ("ServiceAccount", "relctl-bank-a"),
                                                ("Namespace", "clinic-llm"), ("ServiceAccount", "clinic-llm")]


def _granted(rules: list[dict]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


def _needs(method: str, match: re.Match) -> tuple[str, str, str]:
    verb = {"PATCH": "patch", "DELETE": "delete", "POST": "create", "PUT": "update"}.get(method)
    verb = verb or ("get" if match["name"] else "list")
    return match["group"] or "", match["plural"], verb


def _crash_looping(name: str, ns: str) -> dict:
    crash = {"name": "vllm", "restartCount": 5, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}
    return {"apiVersion": "v1", "kind": "Pod", "status": {"containerStatuses": [crash]},
            "metadata": {"name": f"{name}-5d9f7-abcde", "namespace": ns,
                         "labels": {"app.kubernetes.io/instance": name}}}


@pytest.mark.parametrize("k", [KubernetesSettings(namespace="llm", mirror_mode=m, backend_kind=b)
                               for m in ("request-mirror", "off") for b in ("service", "inference-pool")],
                         ids=lambda k: f"{k.mirror_mode}-{k.backend_kind}")
def test_a_tenant_route_names_the_tenant_namespace_and_its_reference_grant_allows_exactly_that(k):
    """The HTTPRoute stays in the controller's namespace; its backendRefs (and the mirror's) name the
    tenant's, and the tenant's ReferenceGrant lets routes from the controller's namespace reach them."""
    with KubeEmulator() as emu:
        router = GatewayApiRouter(KubeApi(k8s.ApiClient(k8s.Configuration(host=emu.url)), timeout=5), k,
                                  tenants=TENANTS)
        spec = RouteSpec("clinic-chat", (Backend("stable", "http://s", "1"), Backend("candidate", "http://c", "2")),
                         {"stable": 90.0, "candidate": 10.0}, mirror_to="candidate", mirror_percent=100)
        router.apply(spec)
        route = emu.get("/apis/gateway.networking.k8s.io/v1/namespaces/llm/httproutes/"
                        + names.route_name("clinic-chat"))
        assert router.current("clinic-chat").weights == {"stable": 90.0, "candidate": 10.0}   # read back
    crd_validate(route)
    rule = route["spec"]["rules"][0]
    refs = rule["backendRefs"] + [f["requestMirror"]["backendRef"] for f in rule.get("filters", [])]
    assert len(refs) == (3 if k.mirror_mode == "request-mirror" else 2)
    assert {r["namespace"] for r in refs} == {"clinic-llm"}
    objs = k8s_tenants.tenant_objects(k, "clinic", TENANTS["clinic"])
    grant = objs[-1]
    assert (grant["kind"], grant["metadata"]["namespace"]) == ("ReferenceGrant", "clinic-llm")
    assert grant["spec"]["from"] == [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "llm"}]
    assert {(t["group"], t["kind"]) for t in grant["spec"]["to"]} == {(r["group"], r["kind"]) for r in refs}
    crd_validate(grant)
    for obj in objs[:-1]:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_with_relctl_gateway_a_tenant_needs_no_reference_grant_and_its_route_no_namespace():
    k = KubernetesSettings(namespace="llm")
    assert "ReferenceGrant" not in [o["kind"] for o in k8s_tenants.tenant_objects(k, "clinic", TENANTS["clinic"])]
    spec = RouteSpec("clinic-chat", (Backend("stable", "http://s", "1"),), {"stable": 100.0})
    route = routes.http_route(k, spec, backend_namespace="clinic-llm")
    assert route["spec"]["rules"][0]["backendRefs"] == [
        {"group": "", "kind": "Service", "name": "relctl-gateway", "port": 8080, "weight": 1}]
