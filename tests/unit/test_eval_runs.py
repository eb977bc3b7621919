"""One evaluation run: figures through the (stub) gateway, drift, cancel on a champion change, the lock."""
from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import REGISTRY

from controller.scheduler.runs import DRIFT_EVENT, LEASE_SECONDS, start_evaluation
from controller.scheduler.store import CANCELLED, FAILED, SKIPPED, SUCCEEDED
from policies.evaluation import EvaluationPolicy
from tests.unit.eval_support import MODEL, StubGateway, make_env


def _finish(env, run):
    env.ctx.jobs.join(10)
    return env.store.get(run.id)


def test_run_scores_the_champion_as_evaluation_traffic(tmp_path):
    gateway = StubGateway("Paris")
    env, suite, logged = make_env(tmp_path, gateway=gateway)
    run = _finish(env, start_evaluation(env, MODEL, "manual"))
    assert run.state == SUCCEEDED and run.version == "1" and run.mlflow_run_id == "mlrun-1"
    assert run.figures[suite] == {"items": 40, "accuracy": 1.0, "compliance": 1.0, "errors": 0}
    assert {r.headers["X-Relctl-Traffic"] for r in gateway.requests} == {"evaluation"}
    assert {r.headers["X-Relctl-Version"] for r in gateway.requests} == {"1"}
    assert env.ctx.registry.get_version(MODEL, "1").tags["relctl.eval.last_run_id"] == "mlrun-1"
    assert env.store.holder(MODEL) is None                          # the lock is given back


def test_worse_answers_than_at_promotion_raise_drift(tmp_path):
    gateway = StubGateway("london")                                    # wrong, and fails the capital validator
    env, suite, _ = make_env(tmp_path, gateway=gateway)
    env.ctx.registry.set_tags(MODEL, "1", {"relctl.quality.suite": suite, "relctl.quality.build_accuracy": "0.95"})
    release = env.ctx.store.create(MODEL, "1", None, {}, env.ctx.clock())
    run = _finish(env, start_evaluation(env, MODEL, "schedule"))
    assert run.state == SUCCEEDED and run.drift["drifted"]
    assert "accuracy 95.0% -> 0.0%" in run.reason
    events = [e for e in env.ctx.store.events(release.id) if e["kind"] == DRIFT_EVENT]
    assert len(events) == 1 and events[0]["data"]["run_id"] == run.id
    assert REGISTRY.get_sample_value("relctl_eval_drift", {"model": MODEL}) == 1.0


def test_first_run_is_the_baseline_of_a_version_without_a_report(tmp_path):
    gateway = StubGateway("Paris")
    env, suite, _ = make_env(tmp_path, gateway=gateway)
    first = _finish(env, start_evaluation(env, MODEL, "manual"))
    gateway.reply = "Lyon"                                             # compliant, but wrong
    second = _finish(env, start_evaluation(env, MODEL, "manual"))
    assert not first.drift["drifted"] and second.drift["drifted"]
    assert second.drift["suites"][suite]["baseline"]["source"] == f"evaluation {first.id}"
    assert second.drift["suites"][suite]["compliance_drop_pct"] == 0
    assert REGISTRY.get_sample_value("relctl_eval_drift", {"model": MODEL}) == 1.0


def test_a_model_the_gateway_does_not_route_yet_is_skipped(tmp_path):
    gateway = StubGateway("Paris")
    gateway.error = (404, "model_not_found")           # the first fire time after a start, before the route
    env, _, logged = make_env(tmp_path, gateway=gateway)
    run = _finish(env, start_evaluation(env, MODEL, "schedule"))
    assert run.state == SKIPPED and "does not serve chat yet" in run.reason
    assert logged == [] and run.figures == {} and env.store.holder(MODEL) is None


def test_an_outage_is_a_failed_run_not_figures_nor_a_baseline(tmp_path):
    gateway = StubGateway("Paris")
    gateway.error = (502, "relctl_error")
    env, suite, logged = make_env(tmp_path, gateway=gateway)
    down = _finish(env, start_evaluation(env, MODEL, "schedule"))
    assert down.state == FAILED and "every one of the 40 requests" in down.reason and "HTTP 502 x40" in down.reason
    assert logged == [] and down.figures == {}
    gateway.error = None                                 # back up: this run is the version's baseline, no drift
    up = _finish(env, start_evaluation(env, MODEL, "schedule"))
    assert up.state == SUCCEEDED and not up.drift["drifted"]
    assert env.store.first_succeeded(MODEL, "1").id == up.id


def test_some_failed_answers_count_as_wrong(tmp_path):
    gateway = StubGateway("Paris")
    gateway.error, gateway.error_requests = (503, "relctl_error"), range(1, 11)
    env, suite, _ = make_env(tmp_path, gateway=gateway)
    run = _finish(env, start_evaluation(env, MODEL, "manual"))
    assert run.state == SUCCEEDED and run.figures[suite]["errors"] == 10
    assert run.figures[suite]["accuracy"] == pytest.approx(30 / 40)


def test_a_champion_change_mid_run_cancels_it(tmp_path):
    gateway = StubGateway("Paris")
    env, _, logged = make_env(tmp_path, gateway=gateway)
    gateway.on_request = lambda n: n == 3 and env.ctx.registry.set_alias(MODEL, "champion", "2")
    run = _finish(env, start_evaluation(env, MODEL, "schedule"))
    assert run.state == CANCELLED and "champion of chat changed from 1 to 2 mid-run" in run.reason
    assert logged == [] and len(gateway.requests) < 40                  # stopped at the next chunk, nothing logged
    assert env.store.holder(MODEL) is None


def test_a_run_while_another_holds_the_lock_is_skipped(tmp_path):
    env, _, _ = make_env(tmp_path)
    assert env.store.acquire(MODEL, "ev-other", "replica-b", env.ctx.clock(), 600)
    run = start_evaluation(env, MODEL, "manual")
    assert run.state == SKIPPED and "ev-other" in run.reason


def test_lock_has_one_holder_until_it_expires(tmp_path):
    env, _, _ = make_env(tmp_path)
    now = env.ctx.clock()
    assert env.store.acquire(MODEL, "ev-a", "a", now, 60)
    assert not env.store.acquire(MODEL, "ev-b", "b", now + timedelta(seconds=59), 60)
    assert env.store.acquire(MODEL, "ev-a", "a", now + timedelta(seconds=59), 60)      # renewal by its holder
    env.store.release(MODEL, "ev-b")                                                    # not the holder: no effect
    assert env.store.holder(MODEL)[0] == "ev-a"
    assert env.store.acquire(MODEL, "ev-b", "b", now + timedelta(seconds=120), 60)    # expired: taken over
    assert env.store.holder(MODEL)[0] == "ev-b"


def test_a_scheduled_fire_time_is_claimed_once(tmp_path):
    env, _, _ = make_env(tmp_path)
    fire = env.ctx.clock()
    assert env.store.claim(MODEL, "schedule", "a", fire, fire) is not None
    assert env.store.claim(MODEL, "schedule", "b", fire, fire) is None
    assert env.store.claim(MODEL, "manual", "a", fire) is not None                      # manual runs have no fire time


def test_no_champion_is_a_clear_error(tmp_path):
    env, _, _ = make_env(tmp_path)
    env.ctx.registry.delete_alias(MODEL, "champion")
    with pytest.raises(LookupError, match="no champion"):
        start_evaluation(env, MODEL, "manual")


def test_runs_left_by_a_stopped_controller_are_recorded_as_abandoned(tmp_path):
    env, _, _ = make_env(tmp_path)
    now = env.ctx.clock()
    dead = env.store.claim(MODEL, "manual", "gone", now - timedelta(minutes=5))
    alive = env.store.claim(MODEL, "manual", "b", now - timedelta(minutes=5))
    assert env.store.acquire(MODEL, alive.id, "b", now, 600)
    recent = env.store.claim(MODEL, "manual", "c", now)                 # may still be taking its lock
    assert env.store.abandon_stale(now) == [dead.id]
    assert env.store.get(dead.id).state == "failed" and "abandoned" in env.store.get(dead.id).reason
    assert {env.store.get(r.id).state for r in (alive, recent)} == {"pending"}


def test_a_run_that_lost_its_lock_stops(tmp_path):
    gateway = StubGateway("Paris")
    env, _, logged = make_env(tmp_path, gateway=gateway)

    def take_over(n):
        if n == 3:         # the lease ran out and another replica took the model's lock
            env.store.release(MODEL, env.store.holder(MODEL)[0])
            env.store.acquire(MODEL, "ev-other", "replica-b", env.ctx.clock(), 600)
    gateway.on_request = take_over
    run = _finish(env, start_evaluation(env, MODEL, "schedule"))
    assert run.state == CANCELLED and "lost the lock of chat" in run.reason and logged == []
    assert env.store.holder(MODEL)[0] == "ev-other"                      # the other run's lock is left alone



def test_a_run_left_by_a_killed_controller_blocks_the_model_for_one_lease_only(tmp_path):
    env, _, _ = make_env(tmp_path)
    now = env.ctx.clock()
    killed = env.store.claim(MODEL, "schedule", "killed-replica", now, now)
    assert env.store.acquire(MODEL, killed.id, "killed-replica", now, LEASE_SECONDS)
    assert start_evaluation(env, MODEL, "manual").state == SKIPPED      # its lease still holds
    env.ctx.clock.advance(LEASE_SECONDS + 1)
    run = _finish(env, start_evaluation(env, MODEL, "manual"))
    assert run.state == SUCCEEDED
    assert env.store.get(killed.id).state == "failed" and "abandoned" in env.store.get(killed.id).reason


def test_a_run_past_its_timeout_stops(tmp_path):
    gateway = StubGateway("Paris")
    env, suite, logged = make_env(tmp_path, gateway=gateway, policy=EvaluationPolicy(
        suites=[str(tmp_path / "capitals.jsonl")], parallel=2, timeout_seconds=30))
    gateway.on_request = lambda n: n == 3 and env.ctx.clock.advance(31)
    run = _finish(env, start_evaluation(env, MODEL, "schedule"))
    assert run.state == CANCELLED and "ran past timeout_seconds=30" in run.reason and logged == []
    assert env.store.holder(MODEL) is None
