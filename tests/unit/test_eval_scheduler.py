"""The evaluation schedule on APScheduler's SQLAlchemy job store: restart, misfire rule, one run per fire time.

A test moves a job's stored next fire time into the past (as if the controller had been down);
the scheduler wakes up on the change and fires it at once, so nothing waits for a clock.
"""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import func, select

from controller.scheduler import evaluations as ev
from controller.scheduler.store import EvaluationRunRow
from policies.evaluation import EvaluationPolicy
from tests.unit.eval_support import CAPITAL, MODEL, StubGateway, make_env


def _settings(tmp_path):
    return SimpleNamespace(database_url=lambda: f"sqlite:///{tmp_path / 'relctl.db'}",
                           gateway_admin_url="http://gateway.invalid", models=[])


def _scheduler():
    sched = BackgroundScheduler(timezone="UTC")
    sched.start()
    return sched


def _schedule(sched, env, tmp_path, policy):
    models = ev.schedule_evaluations(sched, env.ctx, _settings(tmp_path), models=[MODEL], log_run=env.log_run,
                                     policy_of=lambda m: SimpleNamespace(evaluation=policy, validators=CAPITAL))
    ev.current_env().transport = env.transport
    return models


def _events(sched, mask):
    seen, done = [], threading.Event()

    def listen(event):
        seen.append(event)
        done.set()
    sched.add_listener(listen, mask)
    return seen, done


def _now():
    return datetime.now(timezone.utc)


@pytest.fixture
def setup(tmp_path, monkeypatch):
    env, suite, _ = make_env(tmp_path)
    env.transport = StubGateway("Paris").transport
    scheds = []
    yield env, suite, scheds
    for s in scheds:
        s.shutdown(wait=True)
    env.ctx.jobs.join(10)
    ev.set_env(None)


def test_the_job_and_its_next_fire_time_survive_a_restart(setup, tmp_path):
    env, suite, scheds = setup
    policy = EvaluationPolicy(suites=[suite], interval_seconds=3600)
    first = _scheduler()
    assert _schedule(first, env, tmp_path, policy) == [MODEL]
    planned = (_now() + timedelta(minutes=17)).replace(microsecond=0)
    first.modify_job(ev.job_id(MODEL), ev.JOBSTORE, next_run_time=planned)
    first.shutdown(wait=True)
    second = _scheduler()
    scheds.append(second)
    _schedule(second, env, tmp_path, policy)
    job = second.get_job(ev.job_id(MODEL), ev.JOBSTORE)
    assert job.next_run_time == planned                       # kept, not recomputed at start
    assert job.coalesce and job.misfire_grace_time == policy.misfire_grace_seconds
    _schedule(second, env, tmp_path, EvaluationPolicy(suites=[suite]))    # schedule removed from the policy
    assert second.get_job(ev.job_id(MODEL), ev.JOBSTORE) is None


def test_missed_runs_within_grace_collapse_into_one(setup, tmp_path, monkeypatch):
    env, suite, scheds = setup
    calls = []
    monkeypatch.setattr(ev, "start_evaluation", lambda env, model, trigger, fire: calls.append((trigger, fire)))
    sched = _scheduler()
    scheds.append(sched)
    _schedule(sched, env, tmp_path, EvaluationPolicy(suites=[suite], interval_seconds=60, misfire_grace_seconds=600))
    missed = _now().replace(microsecond=0) - timedelta(seconds=300)      # 5 fire times passed while down
    seen, done = _events(sched, EVENT_JOB_EXECUTED | EVENT_JOB_MISSED)
    sched.modify_job(ev.job_id(MODEL), ev.JOBSTORE, next_run_time=missed)
    assert done.wait(10)
    assert [e.code for e in seen] == [EVENT_JOB_EXECUTED]
    assert len(calls) == 1 and calls[0][0] == "schedule"
    assert calls[0][1] >= missed + timedelta(seconds=240)             # the latest missed fire time
    assert sched.get_job(ev.job_id(MODEL), ev.JOBSTORE).next_run_time > _now()


def test_a_run_missed_by_more_than_the_grace_is_skipped(setup, tmp_path, monkeypatch):
    env, suite, scheds = setup
    calls = []
    monkeypatch.setattr(ev, "start_evaluation", lambda *a: calls.append(a))
    sched = _scheduler()
    scheds.append(sched)
    _schedule(sched, env, tmp_path, EvaluationPolicy(suites=[suite], interval_seconds=3600, misfire_grace_seconds=60))
    seen, done = _events(sched, EVENT_JOB_EXECUTED | EVENT_JOB_MISSED)
    sched.modify_job(ev.job_id(MODEL), ev.JOBSTORE, next_run_time=_now() - timedelta(seconds=600))
    assert done.wait(10)
    assert [e.code for e in seen] == [EVENT_JOB_MISSED] and calls == []
    assert sched.get_job(ev.job_id(MODEL), ev.JOBSTORE).next_run_time > _now()


def test_two_schedulers_on_one_store_run_a_fire_time_once(setup, tmp_path):
    env, suite, scheds = setup
    policy = EvaluationPolicy(suites=[suite], interval_seconds=3600)
    a, b = _scheduler(), _scheduler()
    scheds += [a, b]
    _schedule(a, env, tmp_path, policy)
    _schedule(b, env, tmp_path, policy)
    due = _now().replace(microsecond=0) - timedelta(seconds=1)
    seen_a, done_a = _events(a, EVENT_JOB_EXECUTED)
    seen_b, done_b = _events(b, EVENT_JOB_EXECUTED)
    a.modify_job(ev.job_id(MODEL), ev.JOBSTORE, next_run_time=due)
    assert done_a.wait(10)
    # Replica b read the job before a stored its next fire time: it fires the same fire time too.
    b.modify_job(ev.job_id(MODEL), ev.JOBSTORE, next_run_time=due)
    assert done_b.wait(10)
    env.ctx.jobs.join(30)
    # Whichever replica claimed the fire time first ran it; the other found it taken.
    claimed = [e.retval for e in (seen_a[0], seen_b[0]) if e.retval is not None]
    assert len(claimed) == 1, [seen_a[0].retval, seen_b[0].retval]
    with env.store._sessions() as s:
        assert s.scalar(select(func.count()).select_from(EvaluationRunRow)) == 1
    assert env.store.get(claimed[0]).state == "succeeded"
