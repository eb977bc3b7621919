"""GatewayApiRouter against the HTTP-level API stand-in: exact calls, weights, drift, modes."""
from __future__ import annotations

import pytest
from kubernetes import client as k8s

from controller.k8s.api import KubeApi, KubeError
from controller.k8s.settings import KubernetesSettings
from controller.traffic.base import Backend, Fault, RouteSpec
from controller.traffic.wire import RouteError
from controller.traffic.gateway_api import GatewayApiRouter

NS = "llm"
ROUTE = f"/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes/qwen"


def spec(candidate: float, mirror: str | None = None) -> RouteSpec:
    return RouteSpec("qwen", (Backend("stable", "http://qwen-v5", "5"), Backend("candidate", "http://qwen-v7", "7")),
                     {"stable": 100.0 - candidate, "candidate": candidate}, mirror_to=mirror, release_id="r1")


class FakeGateway:
    """Stands in for relctl's gateway admin client (EmbeddedGatewayRouter has its own tests)."""

    def __init__(self):
        self.routes, self.faults = {}, []

    def apply(self, s): self.routes[s.model] = s
    def current(self, model): return self.routes.get(model)
    def remove(self, model): self.routes.pop(model, None)
    def set_fault(self, model, track, fault): self.faults.append((model, track, fault))


def router(emu, mode="off", **kw) -> tuple[GatewayApiRouter, list]:
    drifts = []
    api = KubeApi(k8s.ApiClient(k8s.Configuration(host=emu.url)), timeout=5)
    k = KubernetesSettings(namespace=NS, mirror_mode=mode, **kw)
    return GatewayApiRouter(api, k, on_drift=lambda *a: drifts.append(a), **(
        {"gateway": FakeGateway()} if mode == "relctl-gateway" else {})), drifts


def weights(emu) -> list[int]:
    return [r["weight"] for r in emu.get(ROUTE)["spec"]["rules"][0]["backendRefs"]]


def test_apply_writes_weights_server_side_and_reads_them_back(emu):
    r, drifts = router(emu)
    r.apply(spec(10))
    assert [(c.method, c.path, c.status) for c in emu.calls] == [
        ("GET", ROUTE, 404), ("PATCH", ROUTE, 200), ("GET", ROUTE, 200)]
    assert emu.calls[1].query == {"fieldManager": "relctl", "force": "true"}
    assert weights(emu) == [9000, 1000]
    assert r.current("qwen") == spec(10) and drifts == []
    r.apply(spec(25))
    assert weights(emu) == [7500, 2500] and r.current("qwen").weights == {"stable": 75.0, "candidate": 25.0}


def test_drifted_weights_are_corrected_and_recorded(emu):
    r, drifts = router(emu)
    r.apply(spec(10))
    emu.edit(ROUTE, lambda o: [ref.update(weight=1) for ref in o["spec"]["rules"][0]["backendRefs"]])
    assert r.current("qwen").weights == {"stable": 50.0, "candidate": 50.0}       # what the cluster holds
    assert r.correct_drift("qwen") is True
    assert drifts == [("qwen", {"stable": 90.0, "candidate": 10.0}, {"stable": 50.0, "candidate": 50.0})]
    assert weights(emu) == [9000, 1000] and r.correct_drift("qwen") is False


def test_weights_another_writer_keeps_overwriting_raise_a_retryable_error(emu):
    r, _ = router(emu)
    emu.after_apply = lambda path, obj: obj["spec"]["rules"][0]["backendRefs"][1].update(weight=0)
    with pytest.raises(KubeError, match="another writer") as err:
        r.apply(spec(10))
    assert err.value.retryable


def test_a_conflict_on_apply_is_retryable(emu):
    r, _ = router(emu)
    emu.fail_next("PATCH", "/httproutes/", 409, "conflict")
    with pytest.raises(KubeError) as err:
        r.apply(spec(10))
    assert err.value.status == 409 and err.value.retryable
    r.apply(spec(10))
    assert weights(emu) == [9000, 1000]


def test_request_mirror_mode_mirrors_to_the_candidate_pool(emu):
    r, _ = router(emu, mode="request-mirror", backend_kind="inference-pool")
    r.apply(spec(0, mirror="candidate"))
    rule = emu.get(ROUTE)["spec"]["rules"][0]
    assert [(b["kind"], b["name"], b["weight"]) for b in rule["backendRefs"]] == [
        ("InferencePool", "qwen-v5", 10000), ("InferencePool", "qwen-v7", 0)]
    assert rule["filters"][0]["requestMirror"]["backendRef"]["name"] == "qwen-v7"
    with pytest.raises(RouteError, match="relctl-gateway"):
        r.set_fault("qwen", "candidate", Fault(error_rate=0.5))


def test_relctl_gateway_mode_routes_to_relctls_gateway_and_programs_it(emu):
    r, drifts = router(emu, mode="relctl-gateway")
    r.apply(spec(10, mirror="candidate"))
    refs = emu.get(ROUTE)["spec"]["rules"][0]["backendRefs"]
    assert [(b["name"], b["port"]) for b in refs] == [("relctl-gateway", 8080)]
    assert r.current("qwen") == spec(10, mirror="candidate")
    r._gateway.routes["qwen"] = spec(50, mirror="candidate")                 # the gateway drifted
    assert r.correct_drift("qwen") and r._gateway.routes["qwen"] == spec(10, mirror="candidate")
    assert drifts[0][1:] == ({"stable": 90.0, "candidate": 10.0}, {"stable": 50.0, "candidate": 50.0})
    r.set_fault("qwen", "candidate", Fault(error_rate=0.5))
    assert r._gateway.faults == [("qwen", "candidate", Fault(error_rate=0.5))]


def test_remove_deletes_the_route_and_is_idempotent(emu):
    r, _ = router(emu)
    r.apply(spec(10))
    r.remove("qwen")
    r.remove("qwen")
    assert emu.get(ROUTE) is None and r.current("qwen") is None
