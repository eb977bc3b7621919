"""The reconcile loop on fakes: save then act, level-triggered effects, observed jobs, races, crashes.

The store is real SQLite; pool, router, registry and metrics are tests/fakes. A "crash" is an
exception raised after the save and before the effects, then a fresh JobRunner (a new process)."""
import contextlib
import threading
import time

import pytest

from controller.domain.phases import Phase
from controller.domain.release import UserAction
from controller.reconcile import effects, quantize_stage
from controller.reconcile.jobs import JobRunner
from controller.reconcile.loop import reconcile
from controller.reconcile.workers import ReleaseWorkers
from controller.store.jobs import JobStore
from controller.store.releases import Conflict

POLICY = {"quantize": {"enabled": False}, "shadow": {"duration_seconds": 10},
          "canary": {"steps": [20, 50], "step_seconds": 10},
          "analysis": {"min_requests": 20, "min_soak_seconds": 5, "latency_metrics": []}}


def start(ctx, policy=None):
    ctx.champions.record("chat", "1", ctx.clock())
    return ctx.store.create("chat", "2", "1", {**POLICY, **(policy or {})}, ctx.clock())


def tick(ctx, release_id, seconds=2.0, traffic=None):
    """Advance the clock, serve `traffic` = (requests, candidate error share) split as the router says."""
    ctx.clock.advance(seconds)
    if traffic:
        n, bad = traffic
        to_candidate = round(n * ctx.router.weight("chat") / 100)
        ctx.metrics.add("stable", n - to_candidate)
        ctx.metrics.add("candidate", to_candidate, round(to_candidate * bad))
    return reconcile(ctx, release_id)


def run_until(ctx, release_id, phases, traffic=None, limit=200):
    for _ in range(limit):
        r = tick(ctx, release_id, traffic=traffic)
        if r.phase in phases:
            return r
        ctx.jobs.join(30)    # a download job is a real thread: fast ticks on a loaded machine could all pass it by
    raise AssertionError(f"release stuck in {r.phase}: {r.reason}")


def test_healthy_release_promotes_and_the_effects_follow_the_saved_phase(ctx):
    r = start(ctx)
    r = run_until(ctx, r.id, {Phase.SUCCEEDED}, traffic=(100, 0.0))
    assert ctx.registry.aliases[("chat", "champion")] == "2"
    assert ("chat", "challenger") not in ctx.registry.aliases
    assert ctx.router.current("chat").weights == {"stable": 100.0}            # the new champion, alone
    assert ctx.router.current("chat").backends[0].version == "2"
    assert ("chat", "1") in ctx.pool.stops
    assert ctx.champions.get("chat").version == "2" and ctx.champions.get("chat").history == ("1",)
    assert ctx.store.get(r.id).settled


def test_faulty_candidate_is_rolled_back_and_its_server_stopped(ctx):
    r = start(ctx)
    r = run_until(ctx, r.id, {Phase.CANARY}, traffic=(100, 0.0))
    r = run_until(ctx, r.id, {Phase.ROLLED_BACK}, traffic=(100, 0.5))
    assert ctx.router.weight("chat") == 0.0
    assert ("chat", "2") in ctx.pool.stops
    assert ctx.registry.aliases[("chat", "champion")] == "1"


def test_promote_and_abort_racing_leave_no_trace_of_the_promote(ctx, monkeypatch):
    r = start(ctx)
    r = run_until(ctx, r.id, {Phase.CANARY}, traffic=(100, 0.0))
    ctx.store.request_action(r.id, UserAction.PROMOTE, ctx.clock())
    real_save = ctx.store.save

    def abort_lands_first(old, new, events, now, **kw):
        monkeypatch.setattr(ctx.store, "save", real_save)
        ctx.store.request_action(r.id, UserAction.ABORT, now)   # a user aborts during the tick
        return real_save(old, new, events, now, **kw)

    monkeypatch.setattr(ctx.store, "save", abort_lands_first)
    weights_before = ctx.router.current("chat").weights
    assert reconcile(ctx, r.id).phase == Phase.CANARY           # the promote lost its save: no effect
    assert ctx.registry.aliases[("chat", "champion")] == "1"
    assert ctx.router.current("chat").weights == weights_before
    r = run_until(ctx, r.id, {Phase.ABORTED})
    assert ctx.registry.aliases[("chat", "champion")] == "1" and ctx.router.weight("chat") == 0.0


def test_a_crash_between_save_and_effects_is_mended_by_the_next_tick(ctx, monkeypatch):
    r = start(ctx)
    r = run_until(ctx, r.id, {Phase.CANARY}, traffic=(100, 0.0))
    ctx.store.request_action(r.id, UserAction.ABORT, ctx.clock())
    monkeypatch.setattr(effects, "apply_effects", _crash)
    monkeypatch.setattr("controller.reconcile.loop.apply_effects", _crash)
    with pytest.raises(SystemExit):
        reconcile(ctx, r.id)
    saved = ctx.store.get(r.id)
    assert saved.phase == Phase.ABORTED and not saved.settled   # decided and saved, not yet acted on
    assert ctx.router.weight("chat") > 0                         # the world still shows the canary
    monkeypatch.undo()
    ctx.jobs = JobRunner(JobStore(ctx.jobs.store._sessions), ctx.clock)   # the restarted process
    assert r.id in ctx.store.to_reconcile()
    reconcile(ctx, r.id)
    assert ctx.router.weight("chat") == 0.0 and ("chat", "2") in ctx.pool.stops
    assert ctx.store.get(r.id).settled and r.id not in ctx.store.to_reconcile()
    transitions = [e for e in ctx.store.events(r.id) if e["kind"] == "transition"]
    assert [e["to_phase"] for e in transitions].count("aborted") == 1


def _crash(*args, **kwargs):
    raise SystemExit("killed between save and effects")


def test_a_long_build_is_observed_never_awaited_and_an_abort_cancels_it(ctx, monkeypatch):
    started, release_build = threading.Event(), threading.Event()
    cancelled = []

    def slow_build(ctx_, r, policy, jc):
        started.set()
        while not jc.cancel.wait(0.01):
            if release_build.is_set():
                return {"version": "9", "report": {}}
        cancelled.append(r.id)
        jc.check()

    monkeypatch.setattr(quantize_stage, "_build", slow_build)
    monkeypatch.setattr(quantize_stage, "_cores_away_from_servers", lambda ctx_: contextlib.nullcontext())
    r = start(ctx, {"quantize": {"enabled": True}})
    tick(ctx, r.id)                                              # pending -> quantizing
    r = tick(ctx, r.id)                                          # starts the job, returns at once
    assert started.wait(30) and r.phase == Phase.QUANTIZING
    assert ctx.jobs.get(r.id, "build").state == "running"
    assert tick(ctx, r.id).status["job"]["state"] == "running"
    ctx.store.request_action(r.id, UserAction.ABORT, ctx.clock())
    assert tick(ctx, r.id).phase == Phase.ABORTED
    ctx.jobs.join(30)
    assert cancelled == [r.id] and ctx.jobs.get(r.id, "build").state == "cancelled"
    assert ctx.registry.calls == [c for c in ctx.registry.calls if c[0] != "register"]   # nothing registered


def test_a_job_left_running_by_a_dead_process_is_started_again(ctx):
    store = ctx.jobs.store
    store.start("rel-x", "build", "dead-host:1:abc", ctx.clock())
    job = ctx.jobs.ensure("rel-x", "build", lambda jc: {"version": "7"})
    assert job.attempt == 2 and job.owner == ctx.jobs.owner
    ctx.jobs.join(30)
    assert ctx.jobs.get("rel-x", "build").result == {"version": "7"}


def reconcile_blocking_on(monkeypatch, release_id: str, seen: list[str]):
    """Replace the workers' reconcile: it records each release, and blocks on `release_id` until
    told; returns the (blocked, unblock) events."""
    blocked, unblock = threading.Event(), threading.Event()

    def fake_reconcile(ctx_, rid, known_version=None):
        if rid == release_id:
            blocked.set()
            unblock.wait(60)
        seen.append(rid)
        return ctx_.store.get(rid)
    monkeypatch.setattr("controller.reconcile.workers.reconcile", fake_reconcile)
    return blocked, unblock


def test_a_stuck_release_never_delays_another(ctx, monkeypatch):
    seen = []
    slow = ctx.store.create("slow-model", "2", "1", POLICY, ctx.clock())
    fast = start(ctx)
    blocked, unblock = reconcile_blocking_on(monkeypatch, slow.id, seen)
    workers = ReleaseWorkers(ctx, max_workers=4, slow_after_seconds=0.05)
    try:
        workers.tick()
        assert blocked.wait(30)
        # the slow one is skipped while busy; another worker goes on. Ticked until the fast one has
        # been reconciled three times: a tick that lands while its reconcile is ending skips it.
        deadline = time.monotonic() + 20
        while seen.count(fast.id) < 3 and time.monotonic() < deadline:
            workers.tick()
            time.sleep(0.01)
        assert seen.count(fast.id) >= 3 and slow.id not in seen
    finally:
        unblock.set()
        workers.shutdown()


def test_the_gateway_forgetting_its_routes_is_repaired_on_the_next_tick(ctx):
    r = start(ctx)
    r = run_until(ctx, r.id, {Phase.CANARY}, traffic=(100, 0.0))
    ctx.router.remove("chat")                                  # gateway restarted
    tick(ctx, r.id, traffic=(1, 0.0))
    assert ctx.router.weight("chat") == 20.0


def test_one_active_release_per_model_even_for_two_writers(ctx):
    start(ctx)
    with pytest.raises(Conflict):
        ctx.store.create("chat", "3", "1", POLICY, ctx.clock())


def test_a_checkpoint_that_fails_its_integrity_check_fails_the_deployment(ctx, monkeypatch):
    from controller.registry.integrity import IntegrityError

    def tampered(model, version):
        raise IntegrityError(f"version {version}: changed: model.safetensors", changed=["model.safetensors"])

    monkeypatch.setattr(ctx, "download_checkpoint", tampered)
    r = start(ctx)
    for _ in range(5):
        r = tick(ctx, r.id)
        ctx.jobs.join(30)
    assert r.phase == Phase.FAILED and "model.safetensors" in r.reason
    assert ("chat", "2") not in ctx.pool.starts


def test_the_step_plan_at_the_recent_traffic_is_recorded_while_deploying(ctx, monkeypatch):
    monkeypatch.setattr(ctx.metrics, "recent_traffic", lambda model, seconds: (1200, 12), raising=False)
    r = start(ctx)
    for _ in range(3):
        tick(ctx, r.id)
        ctx.jobs.join(60)
    plans = [e for e in ctx.store.events(r.id) if e["kind"] == "analysis.plan"]
    assert len(plans) == 1 and "2" in plans[0]["reason"]          # 1,200 requests in 600 s: 2 req/s
    assert ctx.jobs.get(r.id, "plan").result["planned"] is True


def test_a_judged_tick_that_decides_nothing_defers_its_figures_and_a_step_is_written_at_once(ctx):
    from controller.store.releases import ReleaseStore
    database = ReleaseStore(ctx.store._sessions)          # what another process would read
    r = start(ctx)
    r = run_until(ctx, r.id, {Phase.CANARY}, traffic=(100, 0.0))
    r = tick(ctx, r.id, traffic=(100, 0.0))                # baseline taken: written
    r = tick(ctx, r.id, traffic=(100, 0.0))
    assert r.phase == Phase.CANARY and r.step_index == 0
    assert ctx.store.get(r.id).status["verdict"] == r.status["verdict"]
    assert database.get(r.id).status["verdict"] != r.status["verdict"]    # figures only: deferred
    while r.step_index == 0:
        r = tick(ctx, r.id, traffic=(100, 0.0))
    stored = database.get(r.id)
    assert (stored.phase, stored.step_index) == (Phase.CANARY, 1)          # a decision: written at once


def test_an_ended_release_is_not_settled_until_the_stable_takes_all_traffic_again(ctx):
    r = start(ctx)
    r = run_until(ctx, r.id, {Phase.CANARY}, traffic=(100, 0.0))
    ctx.pool.stop("chat", "1")                                   # the stable's server died
    ctx.pool.ready_immediately = False
    ctx.store.request_action(r.id, UserAction.ABORT, ctx.clock())
    r = tick(ctx, r.id)
    assert r.phase == Phase.ABORTED and not ctx.store.get(r.id).settled
    assert r.id in ctx.store.to_reconcile()                      # looked at again until it holds
    for _ in range(5):
        tick(ctx, r.id)                                          # the stable's download job, then its start
    ctx.pool.make_ready("chat", "1")
    tick(ctx, r.id)
    assert ctx.router.weight("chat") == 0.0 and ctx.store.get(r.id).settled


def test_the_per_release_tick_series_is_dropped_once_a_release_has_ended(ctx):
    from prometheus_client import REGISTRY
    r = start(ctx)
    workers = ReleaseWorkers(ctx, max_workers=1)

    def last_tick():
        workers.kick(r.id)
        assert workers.drain(30)
        return REGISTRY.get_sample_value("relctl_release_last_tick_seconds", {"release": r.id})
    try:
        assert last_tick() is not None
        ctx.jobs.join(30)      # the servers' download jobs (threads): the abort's effects hold at once
        ctx.store.request_action(r.id, UserAction.ABORT, ctx.clock())
        assert last_tick() is None
    finally:
        workers.shutdown()


def test_a_release_with_new_evidence_is_reconciled_before_the_queue(ctx, monkeypatch):
    order = []
    first = ctx.store.create("first-model", "2", "1", POLICY, ctx.clock())
    queued = [ctx.store.create(f"model-{i}", "2", "1", POLICY, ctx.clock()) for i in range(3)]
    blocked, unblock = reconcile_blocking_on(monkeypatch, first.id, order)
    workers = ReleaseWorkers(ctx, max_workers=1)
    try:
        workers.kick(first.id)
        assert blocked.wait(30)                           # the one worker is busy; the others queue up
        for r in queued:
            workers.kick(r.id)
        workers.hurry({queued[2].id, "rel-not-here"})
        unblock.set()
        assert workers.drain(30)
        assert order == [first.id, queued[2].id, queued[0].id, queued[1].id]
        blocked.clear()
        unblock.clear()
        workers.kick(first.id)
        assert blocked.wait(30)
        workers.hurry({queued[1].id})                    # not queued yet: goes first when it is kicked
        workers.kick(queued[0].id)
        workers.kick(queued[1].id)
        unblock.set()
        assert workers.drain(30)
        assert order[-3:] == [first.id, queued[1].id, queued[0].id]
    finally:
        unblock.set()
        workers.shutdown()


def test_a_candidate_whose_server_dies_in_the_canary_is_rolled_back_with_the_pools_reason(ctx):
    from controller.pools.base import Served
    r = start(ctx)
    r = run_until(ctx, r.id, {Phase.CANARY}, traffic=(100, 0.0))
    dead = ctx.pool.servers[("chat", "2")]
    ctx.pool.servers[("chat", "2")] = Served("chat", "2", dead.url, "failed", "server exited; see its log")
    r = tick(ctx, r.id, traffic=(100, 0.0))
    assert r.phase == Phase.ROLLING_BACK
    assert "canary step 1: the candidate's server is down: server exited; see its log" in r.reason
    r = run_until(ctx, r.id, {Phase.ROLLED_BACK}, traffic=(100, 0.0))
    assert ctx.router.current("chat").weights == {"stable": 100.0}
