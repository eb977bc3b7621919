"""The stages' decisions from a build's report: the speed gate's verdict fails the release or
deploys the full-precision candidate, as the policy says. And the build job's progress: each
sub-step with its start time, the evaluation servers' states, items scored (throttled) and
the speed gate's concurrency levels."""
import math
import threading
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from controller.domain.phases import Phase
from controller.domain.release import BuildOutcome, Release
from controller.pools.base import Served
from controller.reconcile import evaluation_servers, quantize_stage
from controller.reconcile.deploy_stage import choose_artifact
from controller.reconcile.jobs import JobContext, throttled
from controller.reconcile.quantize_stage import check_gate
from policies.schema import Policy
from quantize.errors import QuantizeError
from quantize.speed import LevelStats, SpeedComparison, SpeedVerdict
from tests.fakes import FakePool

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
PASSING = {"parent_perplexity": 2.0, "build_perplexity": 2.0, "perplexity_increase_pct": 0.0,
           "parent_accuracy": 0.7, "build_accuracy": 0.7, "accuracy_drop_pct": 0.0, "eval_items": 6044,
           "heldout_tokens": 4096, "parent_layers_bytes_fp16": 1000, "build_layers_bytes": 260,
           "weight_size_ratio": 0.26, "parent_only_correct": 0, "build_only_correct": 0}
POLICY = Policy.model_validate({"quality": {"on_inconclusive": "pass"}})


def build(speed=None):
    return BuildOutcome(True, "3", {"quality": PASSING, "speed": speed})


def release(speed=None):
    return Release("rel-1", "chat", "2", "1", Phase.DEPLOYING, T0,
                   status={"build": {"version": "3", "report": {"quality": {"quant_method": "awq"}, "speed": speed}}})


def test_a_build_slower_than_allowed_fails_the_gate_with_the_table():
    slow = {"passed": False, "action": "fail", "reason": "TTFT p99 +40% at concurrency 8 (limit 25%)"}
    outcome = check_gate(release(), build(slow), POLICY)
    assert not outcome.ok and "speed gate" in outcome.reason and "+40%" in outcome.reason


def test_a_build_as_fast_as_allowed_passes(ctx):
    fast = {"passed": True, "action": "proceed", "reason": "within limits"}
    assert check_gate(release(), build(fast), POLICY).ok
    assert choose_artifact(ctx, release(fast))["version"] == "3"


def test_a_slower_build_under_deploy_full_precision_deploys_the_parent(ctx):
    slow = {"passed": False, "action": "deploy_full_precision", "reason": "tokens/s 0.6x of the parent (min 0.8x)"}
    choice = choose_artifact(ctx, release(slow))
    assert choice["version"] == "2" and choice["quantization"] == "none" and "0.6x" in choice["reason"]


def job_context(ctx):
    """A JobContext on the real job store; every progress write is recorded (a copy) as written."""
    job = ctx.jobs.store.start("rel-1", "build", ctx.jobs.owner, ctx.clock())
    writes, update = [], ctx.jobs.store.update

    def recording(key, attempt, now, **fields):
        if "progress" in fields:
            writes.append(dict(fields["progress"]))
        return update(key, attempt, now, **fields)
    ctx.jobs.store.update = recording
    return JobContext(ctx.jobs, job, threading.Event()), writes


def test_a_new_step_or_detail_starts_a_sub_step_with_its_start_time(ctx):
    jc, _ = job_context(ctx)
    t0 = ctx.clock()
    jc.progress(step="evaluating", detail="starting servers")
    ctx.clock.advance(30)
    jc.progress(servers={"parent": "ready", "build": "starting"}, done=1, total=2)
    stored = ctx.jobs.get("rel-1", "build").progress
    assert stored["started_at"] == t0.isoformat() and stored["done"] == 1   # counts do not restart the clock
    ctx.clock.advance(12)
    jc.progress(detail="scoring")
    stored = ctx.jobs.get("rel-1", "build").progress
    assert stored == {"step": "evaluating", "detail": "scoring", "started_at": ctx.clock().isoformat()}
    ctx.clock.advance(5)
    jc.progress(step="registering")                           # a new step drops the old detail
    assert ctx.jobs.get("rel-1", "build").progress == {"step": "registering", "started_at": ctx.clock().isoformat()}


def test_throttled_reports_at_most_once_a_second_and_always_the_last():
    now, seen = [0.0], []
    report = throttled(lambda done, total: seen.append(done), seconds=1.0, clock=lambda: now[0])
    for done in range(11):                     # 0.25 s apart
        report(done, 10)
        now[0] += 0.25
    assert seen == [0, 4, 8, 10]


class SlowPool(FakePool):
    """Servers become ready after some polls each."""

    def __init__(self, polls: dict[str, int]):
        super().__init__(ready_immediately=False)
        self.polls = polls

    def status(self, model, version):
        if self.polls.get(version, 0) > 0:
            self.polls[version] -= 1
        elif (model, version) in self.servers and self.servers[(model, version)].state == "starting":
            self.make_ready(model, version)
        return super().status(model, version)


def test_waiting_reports_each_server_state_when_it_changes(monkeypatch):
    monkeypatch.setattr(evaluation_servers, "POLL_SECONDS", 0.0)
    pool, states = SlowPool({"rel-1-eval-parent": 1, "rel-1-eval-build": 3}), []
    with evaluation_servers.served_pair(pool, "chat", "rel-1", "/p", "/b", 60, on_progress=states.append) as pair:
        assert pair.build_url == "http://fake/chat/rel-1-eval-build"
    assert states == [{"parent": "starting", "build": "starting"}, {"parent": "ready", "build": "starting"},
                      {"parent": "ready", "build": "ready"}]


def test_waiting_names_the_server_that_failed_or_is_late(monkeypatch):
    monkeypatch.setattr(evaluation_servers, "POLL_SECONDS", 0.0)
    pool = SlowPool({"b": 10**6})
    pool.ensure("chat", "a", "/a")
    pool.ensure("chat", "b", "/b")
    with pytest.raises(QuantizeError, match=r"evaluation server b not ready after 0 s"):
        evaluation_servers.wait_all_ready(pool, "chat", {"parent": "a", "build": "b"}, 0)
    pool.servers[("chat", "b")] = Served("chat", "b", "u", "failed", "exit 1")
    with pytest.raises(QuantizeError, match="evaluation server b failed: exit 1"):
        evaluation_servers.wait_all_ready(pool, "chat", {"parent": "a", "build": "b"}, 60)


def _level(c: int, itl: float = 20.0) -> LevelStats:
    return LevelStats(c, 8, 0, 100.0, 150.0, itl, 30.0, 400.0)


def test_the_build_job_reports_servers_scoring_and_speed(ctx, monkeypatch):
    import quantize.dequant
    import quantize.report
    import quantize.speed

    monkeypatch.setattr(evaluation_servers, "POLL_SECONDS", 0.0)
    ctx.pool = SlowPool({"rel-1-eval-build": 2})
    scored_at = []

    def quality_report(parent, build, *, eval_set, served, on_progress, **cost):
        scored_at.append(ctx.clock())
        for done in range(1001):               # far faster than once a second: two writes, not 1001
            on_progress(done, 1000)
        return "report"

    def speed_gate(parent_url, build_url, model, prompts, quality, *, on_progress):
        for done in range(4):
            on_progress(done, 3)
        cmp = SpeedComparison(tuple(_level(c) for c in (1, 8, 32)), tuple(_level(c) for c in (1, 8, 32)))
        return SpeedVerdict(True, "proceed", "speed gate passed:\n| table |", cmp)

    monkeypatch.setattr(quantize.dequant, "quant_config", lambda build: {"quant_method": "awq"})
    monkeypatch.setattr(quantize.report, "quality_report", quality_report)
    monkeypatch.setattr(quantize.speed, "speed_gate", speed_gate)
    monkeypatch.setattr(quantize.speed, "default_prompts", lambda: ["hi"])
    policy = Policy.model_validate({"quality": {"evaluate_on": "pool", "speed_concurrency": [32, 1, 8]}})
    r = Release("rel-1", "chat", "2", "1", Phase.QUANTIZING, T0)
    jc, writes = job_context(ctx)
    ctx.clock.advance(42)
    report, kept, speed, not_measured = quantize_stage._measure(
        ctx, r, policy, "/p", "/b", SimpleNamespace(seconds=1.0, peak_memory_mb=2.0), jc)
    assert (report, kept, speed.passed, not_measured) == ("report", True, True, None)

    starting = [w for w in writes if w["detail"].startswith("starting parent and build servers")]
    assert [w.get("servers") for w in starting] == [None, {"parent": "ready", "build": "starting"},
                                                   {"parent": "ready", "build": "ready"}]
    assert [w.get("done") for w in starting] == [None, 1, 2] and starting[-1]["total"] == 2
    scoring = [w for w in writes if w["detail"].startswith("scoring builtin:large on pool fake")]
    assert [(w.get("done"), w.get("total")) for w in scoring] == [(None, None), (0, 1000), (1000, 1000)]
    assert "servers" not in scoring[-1] and scoring[0]["started_at"] == scored_at[0].isoformat()
    speed_writes = [w for w in writes if w["step"] == "measuring speed"]
    assert speed_writes[0]["detail"] == "concurrency levels 1, 8, 32"
    assert [w.get("item") for w in speed_writes] == [None, "concurrency 1", "concurrency 8", "concurrency 32",
                                                    "all levels measured"]
    assert speed_writes[-1]["done"] == speed_writes[-1]["total"] == 3


def test_the_speed_document_keeps_the_figures_or_says_why_none(ctx, monkeypatch):
    broken = LevelStats(8, 8, 8, math.nan, math.nan, math.nan, math.nan, 0.0)
    verdict = SpeedVerdict(False, "fail", "speed gate failed (c=8: 0 parent and 8 build requests failed):\n|",
                           SpeedComparison((_level(8),), (broken,)))
    doc = quantize_stage.speed_document(verdict, None)
    assert doc["measured"] and doc["action"] == "fail"
    assert doc["comparison"]["build"][0]["ttft_p99_ms"] is None          # JSON has no NaN
    assert doc["comparison"]["parent"][0]["itl_p50_ms"] == 20.0
    assert quantize_stage.speed_document(None, "policy quality.evaluate_on is 'cpu'") == {
        "measured": False, "reason": "policy quality.evaluate_on is 'cpu'"}
    unmeasured = BuildOutcome(True, "3", {"quality": PASSING, "speed": {"measured": False, "reason": "cpu"}})
    assert check_gate(release(), unmeasured, POLICY).ok


def test_a_build_evaluated_on_cpu_says_why_its_speed_was_not_measured(ctx, monkeypatch):
    import quantize.dequant
    import quantize.report

    monkeypatch.setattr(quantize.dequant, "quant_config", lambda build: {"quant_method": "awq"})
    monkeypatch.setattr(quantize.report, "quality_report",
                        lambda parent, build, *, eval_set, on_progress, **cost: on_progress(5, 5) or "report")
    monkeypatch.setattr(ctx.pool, "can_serve", lambda method: (False, "no 4-bit kernel on this CPU"))
    jc, writes = job_context(ctx)
    policy = Policy.model_validate({"quality": {"suite": "builtin:small"}})
    r = Release("rel-1", "chat", "2", "1", Phase.QUANTIZING, T0)
    _, kept, speed, why = quantize_stage._measure(ctx, r, policy, "/p", "/b",
                                                  SimpleNamespace(seconds=1.0, peak_memory_mb=2.0), jc)
    assert (kept, speed) == (False, None)
    assert why == "evaluated on CPU: pool fake cannot serve the build (no 4-bit kernel on this CPU)"
    assert writes[-1]["detail"] == "scoring builtin:small on CPU (dequantized weights)" and writes[-1]["done"] == 5


@pytest.mark.parametrize("action", ["fail", "deploy_full_precision", "proceed"])
def test_a_build_reused_after_a_restart_keeps_its_speed_verdict(ctx, action):
    from controller.registry import conventions as rc
    tags = {**rc.lineage_tags("2", "awq-w4-g128", {"accuracy_drop_pct": 0.0}), rc.TAG_RELEASE_ID: "rel-1",
            **rc.speed_tags(action, "tokens/s 0.6x of the parent (min 0.8x)")}
    version = ctx.registry.add_version("chat", tags)          # registered by the process that crashed
    done = quantize_stage._build_job(ctx, release(), POLICY, None)
    speed = done["report"]["speed"]
    assert done["version"] == version and speed["action"] == action and speed["passed"] == (action == "proceed")
    outcome = check_gate(release(), BuildOutcome(True, version, {"quality": PASSING, "speed": speed}), POLICY)
    assert outcome.ok == (action != "fail")
    assert choose_artifact(ctx, release(speed))["version"] == ("2" if action == "deploy_full_precision" else "3")


def test_a_build_reused_without_speed_tags_says_it_was_not_measured(ctx):
    from controller.registry import conventions as rc
    ctx.registry.add_version("chat", {**rc.lineage_tags("2", "awq-w4-g128"), rc.TAG_RELEASE_ID: "rel-1"})
    speed = quantize_stage._build_job(ctx, release(), POLICY, None)["report"]["speed"]
    assert speed == {"measured": False, "reason": quantize_stage.REUSED}


@pytest.mark.parametrize("side, version", [("build", "3"), ("parent", "2"), (None, None)])
def test_the_evaluation_server_of_what_is_deployed_is_adopted_and_the_other_stopped(ctx, side, version):
    labels = evaluation_servers.evaluation_labels("rel-1")
    for label in labels.values():
        ctx.pool.ensure("chat", label, None)
    starts = len(ctx.pool.starts)
    evaluation_servers.hand_over(ctx.pool, "chat", "rel-1", side, version or "3")
    assert all(ctx.pool.status("chat", label) is None for label in labels.values())   # none left running
    assert (ctx.pool.status("chat", version) is not None) if version else ctx.pool.status("chat", "3") is None
    assert len(ctx.pool.starts) == starts                                              # adopted, not started


def test_the_parents_evaluation_server_starts_while_the_build_is_quantized_and_stops_if_it_fails(
        tmp_path, monkeypatch):
    import quantize.job
    pool = FakePool(ready_immediately=False)
    ctx = SimpleNamespace(pool=pool, workdir=tmp_path, download_checkpoint=lambda model, version: tmp_path / "parent",
                          registry=SimpleNamespace(uri="http://mlflow"))
    policy = Policy.model_validate({"quality": {"evaluate_on": "auto"}})
    r = release()
    parent = evaluation_servers.evaluation_labels(r.id)["parent"]
    seen = []

    def failing_quantization(*args, **kwargs):
        seen.append(pool.status(r.model, parent))
        raise QuantizeError("the backend failed", cause="backend")
    monkeypatch.setattr(quantize.job, "run_quantize_job", failing_quantization)
    jc = SimpleNamespace(progress=lambda **kw: None, cancel=threading.Event(), check=lambda: None)
    with pytest.raises(QuantizeError):
        quantize_stage._build(ctx, r, policy, jc)
    assert seen and seen[0] is not None and seen[0].state == "starting"      # started before quantizing
    assert pool.status(r.model, parent) is None                             # and stopped with the failure
    pool.starts.clear()
    cpu_only = Policy.model_validate({"quality": {"evaluate_on": "cpu"}})
    with pytest.raises(QuantizeError):
        quantize_stage._build(ctx, r, cpu_only, jc)
    assert pool.starts == []                                                # nothing to serve on the pool


def test_a_pool_whose_servers_fetch_the_version_gets_no_download(tmp_path):
    from controller.reconcile.deploy_stage import ensure_serving
    from tests.conftest import make_controller

    class FetchingPool(FakePool):       # as the Kubernetes pool: its pods' init container downloads
        fetches_checkpoints = True

        def ensure(self, model, version, artifact_dir):
            assert artifact_dir is None
            return super().ensure(model, version, artifact_dir)

    ctx = make_controller(tmp_path, pool=FetchingPool())
    ctx.download_checkpoint = lambda model, version: pytest.fail("the controller downloaded the checkpoint")
    served = ensure_serving(ctx, "chat", "2", "rel-1")
    assert served.state == "ready" and ctx.pool.starts == [("chat", "2")]
    assert ctx.jobs.get("rel-1", "download-2") is None
