"""KubernetesPool against the HTTP-level API stand-in (tests/support/k8s_emulator.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client as k8s

from controller.k8s.api import KubeApi, KubeError
from policies.kubernetes import KubernetesPolicy
from controller.k8s.settings import KubernetesSettings
from controller.pools.kubernetes import KubernetesPool

NS = "llm"
NAME = "qwen-v7"
DEP = f"/apis/apps/v1/namespaces/{NS}/deployments/{NAME}"
SVC = f"/api/v1/namespaces/{NS}/services/{NAME}"
PDB = f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/{NAME}"
HPA = f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/{NAME}"
POD = f"/api/v1/namespaces/{NS}/pods/{NAME}-5d9f7-abcde"


class Clock:
    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def pool(emu, clock):
    api = KubeApi(k8s.ApiClient(k8s.Configuration(host=emu.url)), timeout=5)
    k = KubernetesSettings(namespace=NS)
    return KubernetesPool(api, k, mlflow_uri="http://mlflow:5000", clock=clock,
                          policy_for=lambda model: KubernetesPolicy(standby_seconds=600))


def _pod(**status) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "status": status,
            "metadata": {"name": f"{NAME}-5d9f7-abcde", "namespace": NS,
                         "labels": {"app.kubernetes.io/instance": NAME}}}


def test_ensure_applies_each_object_server_side_as_relctl(emu, pool):
    served = pool.ensure("qwen", "7", Path("/unused"))
    assert emu.writes() == [("PATCH", DEP), ("PATCH", SVC), ("PATCH", PDB), ("PATCH", HPA)]
    for call in emu.calls[:4]:
        assert call.query == {"fieldManager": "relctl", "force": "true"}
        assert call.content_type == "application/apply-patch+yaml"
    assert [(c.method, c.path) for c in emu.calls[4:]] == [("GET", DEP), ("GET", f"/api/v1/namespaces/{NS}/pods")]
    assert emu.calls[5].query == {"labelSelector": f"app.kubernetes.io/instance={NAME}"}
    assert (served.state, served.url) == ("starting", f"http://{NAME}.{NS}.svc.cluster.local:8000")


def test_ensure_is_idempotent_and_a_ready_pod_makes_the_version_ready(emu, pool):
    pool.ensure("qwen", "7", Path("/unused"))
    generation = emu.get(DEP)["metadata"]["generation"]
    emu.edit(DEP, lambda d: d.update(status={"replicas": 3, "readyReplicas": 1}))
    served = pool.ensure("qwen", "7", Path("/unused"))
    assert emu.get(DEP)["metadata"]["generation"] == generation      # same spec: nothing rolled
    assert (served.state, served.detail) == ("ready", "1/3 pods ready")


def test_conflict_on_apply_is_retryable_and_the_next_tick_succeeds(emu, pool):
    emu.fail_next("PATCH", "/deployments/", 409, "the object has been modified")
    with pytest.raises(KubeError) as err:
        pool.ensure("qwen", "7", Path("/unused"))
    assert err.value.status == 409 and err.value.retryable
    assert "the object has been modified" in str(err.value)
    assert pool.ensure("qwen", "7", Path("/unused")).state == "starting"


@pytest.mark.parametrize("status,hint", [(403, "RBAC"), (422, "invalid"), (404, "CRD")])
def test_client_errors_are_final_with_a_hint(emu, pool, status, hint):
    emu.fail_next("PATCH", "/services/", status, "nope")
    with pytest.raises(KubeError, match=hint) as err:
        pool.ensure("qwen", "7", Path("/unused"))
    assert not err.value.retryable


def test_server_errors_and_an_unreachable_api_are_retryable(emu, pool):
    emu.fail_next("GET", "/deployments/", 503, "etcd leader changed")
    with pytest.raises(KubeError) as err:
        pool.status("qwen", "7")
    assert err.value.retryable
    dead = KubeApi(k8s.ApiClient(k8s.Configuration(host="http://127.0.0.1:9")), timeout=2)
    with pytest.raises(KubeError, match="unreachable") as err:
        dead.get("apps/v1", "Deployment", NS, NAME)
    assert err.value.retryable and err.value.status is None


def test_a_pod_never_ready_fails_with_the_reason_from_its_status_and_events(emu, pool):
    pool.ensure("qwen", "7", Path("/unused"))
    emu.edit(DEP, lambda d: d.update(status={"replicas": 1, "readyReplicas": 0, "conditions": [
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}))
    emu.put(POD, _pod(conditions=[{"type": "Ready", "status": "False", "reason": "ContainersNotReady",
                                   "message": "containers with unready status: [vllm]"}]))
    emu.put(f"/api/v1/namespaces/{NS}/events/e1", {"type": "Warning", "reason": "Unhealthy",
            "message": "Readiness probe failed: connection refused", "lastTimestamp": "2027-01-01T00:00:00Z",
            "involvedObject": {"kind": "Pod", "name": f"{NAME}-5d9f7-abcde"}, "metadata": {"name": "e1"}})
    served = pool.status("qwen", "7")
    assert served.state == "failed"
    assert "no pod ready within 900 s (ProgressDeadlineExceeded)" in served.detail
    assert "containers with unready status: [vllm]" in served.detail
    assert "Unhealthy: Readiness probe failed: connection refused" in served.detail
    assert emu.calls[-1].query == {"fieldSelector": f"involvedObject.kind=Pod,involvedObject.name={NAME}-5d9f7-abcde"}


def test_a_crash_looping_pod_fails_with_its_last_exit(emu, pool):
    pool.ensure("qwen", "7", Path("/unused"))
    crash = {"name": "vllm", "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                          "message": "Traceback ...\ntorch.OutOfMemoryError: CUDA out of memory"}}}
    emu.put(POD, _pod(containerStatuses=[crash]))
    assert pool.status("qwen", "7").state == "starting"                  # 2 restarts: not yet
    emu.edit(POD, lambda p: p["status"]["containerStatuses"][0].update(restartCount=3))
    served = pool.status("qwen", "7")
    assert served.state == "failed"
    assert "CrashLoopBackOff after 3 restarts (last exit 1, Error: torch.OutOfMemoryError" in served.detail


def test_stop_deletes_the_version_and_stop_all_finds_versions_by_label(emu, pool):
    pool.ensure("qwen", "7", Path("/unused"))
    pool.ensure("qwen", "8", Path("/unused"))
    pool.stop("qwen", "7")
    assert [p for m, p in emu.writes() if m == "DELETE"] == [HPA, PDB, SVC, DEP]
    assert pool.status("qwen", "7") is None and pool.status("qwen", "8") is not None
    pool.stop_all()
    assert pool.status("qwen", "8") is None


def test_retired_champion_stays_warm_until_its_standby_ends(emu, pool, clock):
    pool.ensure("qwen", "7", Path("/unused"))
    pool.retire("qwen", "7")
    assert emu.get(DEP)["metadata"]["annotations"]["relctl.io/standby-until"] == "2027-01-15T08:10:00Z"
    assert pool.status("qwen", "7").state == "stopped"
    assert pool.reap_standbys() == [] and emu.get(DEP) is not None
    pool.ensure("qwen", "7", Path("/unused"))                         # a rollback: back in service
    assert "relctl.io/standby-until" not in emu.get(DEP)["metadata"]["annotations"]
    pool.retire("qwen", "7")
    clock.now += 601
    assert pool.reap_standbys() == [("qwen", "7")] and emu.get(DEP) is None


def test_pool_serves_4bit_builds_on_gpu():
    pool = KubernetesPool(None, KubernetesSettings(gpu_product="NVIDIA-L4"), mlflow_uri="")
    assert pool.can_serve("awq") == (True, "GPU pool (NVIDIA-L4) serves awq builds with vLLM's 4-bit kernels")
    assert pool.can_serve("gptq")[0] is False and pool.can_serve(None)[0] is True
