"""A release whose build runs as a Kubernetes Job (settings quantize_runner: kubernetes), through the
real reconcile loop and build job, the Job on the API stand-in. The test plays the Job: it registers
the build in the registry as quantize_entry.py does, and writes the Job's status and its pod's
termination message."""
from __future__ import annotations

import time

import pytest
from kubernetes import client as k8s

from controller.config import Settings
from controller.domain.phases import Phase
from controller.domain.release import UserAction
from controller.k8s.api import KubeApi
from controller.k8s.quantize_job import KubernetesQuantizeJobs, job_name
from controller.k8s.settings import KubernetesSettings
from controller.reconcile.loop import reconcile
from controller.registry import conventions as rc
from controller.runtime import build_controller
from policies.schema import Policy
from tests.conftest import make_controller
from tests.support.k8s_emulator import PASSING_FIGURES, job_exits

NS = "llm"
POLICY = {"quantize": {"enabled": True}, "shadow": {"duration_seconds": 10}, "canary": {"steps": [50]}}


@pytest.fixture
def ctx(tmp_path, emu):
    api = KubeApi(k8s.ApiClient(k8s.Configuration(host=emu.url)), timeout=5)
    jobs = KubernetesQuantizeJobs(api, KubernetesSettings(namespace=NS), "http://mlflow:5000", poll_seconds=0.02)
    return make_controller(tmp_path, quantize_jobs=jobs)


def job_path(release_id: str) -> str:
    return f"/apis/batch/v1/namespaces/{NS}/jobs/{job_name(release_id)}"


def started(ctx, emu):
    """A release past pending whose build Job the controller has created."""
    ctx.champions.record("chat", "1", ctx.clock())
    r = ctx.store.create("chat", "2", "1", POLICY, ctx.clock())
    for _ in range(2):
        ctx.clock.advance(2)
        reconcile(ctx, r.id)
    wait(lambda: emu.get(job_path(r.id)) is not None)
    return r


def job_ends(emu, release_id: str, result: dict | None, failed: str = "") -> None:
    job_exits(emu, NS, job_name(release_id), result, failed)


def run_until(ctx, release_id: str, done, seconds: float = 30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ctx.clock.advance(2)
        r = reconcile(ctx, release_id)
        if done(r):
            return r
        time.sleep(0.05)
    raise AssertionError(f"release stuck in {ctx.store.get(release_id).phase}: {ctx.store.get(release_id).reason}")


def wait(cond, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_build_runs_as_a_job_whose_registered_version_the_release_deploys(ctx, emu):
    r = started(ctx, emu)
    c = emu.get(job_path(r.id))["spec"]["template"]["spec"]["containers"][0]
    assert c["args"][:6] == ["--model", "chat", "--version", "2", "--release", r.id]
    assert ctx.store.get(r.id).phase == Phase.QUANTIZING
    progress = run_until(ctx, r.id, lambda rel: "Job" in rel.status.get("job", {}).get("detail", "")).status["job"]
    assert progress["state"] == "running" and progress["step"] == "quantizing"

    # The Job registers its build (lineage and release tags) and says so in its termination message.
    build = ctx.registry.add_version("chat", {**rc.lineage_tags("2", "awq-w4-g128", PASSING_FIGURES),
                                              rc.TAG_RELEASE_ID: r.id})
    job_ends(emu, r.id, {"status": "succeeded", "build_version": build, "gate": {"passed": True, "reason": "ok"}})
    r = run_until(ctx, r.id, lambda rel: rel.phase not in (Phase.QUANTIZING, Phase.EVALUATING))
    assert r.phase == Phase.DEPLOYING, r.reason
    assert r.status["build"]["version"] == build
    r = run_until(ctx, r.id, lambda rel: "deployment" in rel.status)
    assert r.status["deployment"]["version"] == build                       # what gets deployed is the Job's build
    assert r.status["build"]["report"]["speed"]["measured"] is False
    assert not [c for c in ctx.registry.calls if c[0] == "register"]          # the controller registered nothing
    assert ("DELETE", job_path(r.id)) not in emu.writes()        # kept for its logs (ttlSecondsAfterFinished)


def test_an_abort_deletes_the_job_and_nothing_is_registered(ctx, emu):
    r = started(ctx, emu)
    ctx.store.request_action(r.id, UserAction.ABORT, ctx.clock())
    ctx.clock.advance(2)
    assert reconcile(ctx, r.id).phase == Phase.ABORTED
    ctx.jobs.join(30)
    assert ("DELETE", job_path(r.id)) in emu.writes() and emu.get(job_path(r.id)) is None
    delete = next(call for call in emu.calls if call.method == "DELETE")
    assert delete.body == {"propagationPolicy": "Foreground"}                  # its pod goes first
    assert ctx.jobs.get(r.id, "build").state == "cancelled"
    assert not [c for c in ctx.registry.calls if c[0] == "register"]


def test_an_api_server_that_does_not_answer_for_a_moment_fails_no_build(ctx, emu):
    emu.fail_next("GET", "/jobs/", 503, "apiserver restarting")     # before the Job is created ...
    emu.fail_next("PATCH", "/jobs/", 429, "too many requests")
    r = started(ctx, emu)                                            # ... it is created all the same
    emu.fail_next("GET", "/jobs/", 503, "apiserver restarting")     # and while it runs
    job_ends(emu, r.id, {"status": "succeeded", "build_version": ctx.registry.add_version(
        "chat", {**rc.lineage_tags("2", "awq-w4-g128", PASSING_FIGURES), rc.TAG_RELEASE_ID: r.id})})
    r = run_until(ctx, r.id, lambda rel: rel.phase not in (Phase.QUANTIZING, Phase.EVALUATING))
    assert r.phase == Phase.DEPLOYING, r.reason
    assert [c.status for c in emu.calls if "/jobs/" in c.path][:3] == [503, 404, 429]


@pytest.mark.parametrize("result, failed, reason", [
    ({"status": "gate_failed", "gate": {"passed": False, "reason": "accuracy drop 3.1 > 1.2 points"}}, "",
     "quality gate failed, nothing registered: accuracy drop 3.1 > 1.2 points"),
    ({"status": "error", "error": "unsupported architecture 'bert'"}, "BackoffLimitExceeded",
     "failed: unsupported architecture 'bert'"),
    (None, "DeadlineExceeded", "failed: DeadlineExceeded: Job has reached the specified backoff limit"),
])
def test_a_job_that_ends_without_a_build_fails_the_release_with_its_cause(ctx, emu, result, failed, reason):
    r = started(ctx, emu)
    job_ends(emu, r.id, result, failed)
    r = run_until(ctx, r.id, lambda rel: rel.phase != Phase.QUANTIZING)
    assert r.phase == Phase.FAILED
    assert reason in r.reason and job_name(r.id) in r.reason


def test_the_runner_is_chosen_by_name_in_the_settings():
    assert Settings(quantize_runner="kubernetes").quantize_runner == "kubernetes"
    with pytest.raises(ValueError, match="unknown quantize backend 'slurm'; known: kubernetes, local"):
        Settings(quantize_runner="slurm")


def test_the_controller_is_assembled_with_the_runner_the_settings_name(tmp_path, emu):
    kubeconfig = emu.write_kubeconfig(tmp_path / "kubeconfig")
    k = KubernetesSettings(namespace=NS, kubeconfig=str(kubeconfig))
    on_cluster, _ = build_controller(Settings(workdir=tmp_path / "a", quantize_runner="kubernetes", kubernetes=k))
    assert isinstance(on_cluster.quantize_jobs, KubernetesQuantizeJobs)
    on_cluster.quantize_jobs.start("rel-1", "chat", "2", Policy())
    assert emu.get(job_path("rel-1")) is not None                  # through the kubeconfig's cluster
    assert build_controller(Settings(workdir=tmp_path / "b"))[0].quantize_jobs is None   # local: the subprocess
