"""Scheduled evaluations on APScheduler with a persistent job store in the controller's database.

One job per model whose policy has `evaluation.cron` (or `interval_seconds`), id `evaluate:<model>`,
in an SQLAlchemyJobStore on the controller's db_url (table `apscheduler_jobs`), so schedules and
their next fire times survive a restart.

Misfire rule (`coalesce=True`, `misfire_grace_time=evaluation.misfire_grace_seconds`): fire times
missed while no controller ran collapse into ONE run, at start, if the latest of them is at most
the grace time old; older than that, the run is skipped (logged) and the schedule continues at its
next fire time.

Never twice at once: a scheduled fire time is claimed by a unique row (model, fire time) in
`evaluation_runs`, so replicas sharing the job store (or a restarted scheduler) run it once; and
a run holds its model's lock row (`evaluation_locks`, with an owner and an expiry) while it runs.
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any, Callable

from apscheduler.executors.base import run_job
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from sqlalchemy.orm import sessionmaker

from controller.scheduler.runs import EvaluationEnv, NoChampion, start_evaluation
from controller.scheduler.store import EvaluationStore
from controller.store.db import make_engine

log = logging.getLogger(__name__)

JOBSTORE = "evaluations"
EXECUTOR = "evaluations"
JOB_PREFIX = "evaluate:"
_ENV: EvaluationEnv | None = None           # the scheduled job (stored by reference) finds its controller here
_FIRE = threading.local()                   # the fire time of the run on this thread


def job_id(model: str) -> str:
    return JOB_PREFIX + model


def current_env() -> EvaluationEnv | None:
    return _ENV


def set_env(env: EvaluationEnv | None) -> None:
    global _ENV
    _ENV = env


class FireTimeExecutor(ThreadPoolExecutor):
    """A thread pool that tells each run its scheduled fire time (APScheduler 3 does not pass it to
    the job): the fire time is what makes a scheduled run unique across replicas and restarts."""

    def _do_submit_job(self, job, run_times):
        def run_each():
            events = []
            for run_time in run_times:
                _FIRE.time = run_time
                events += run_job(job, job._jobstore_alias, [run_time], self._logger.name)
            return events

        def done(f):
            if f.exception():
                self._run_job_error(job.id, f.exception(), f.exception().__traceback__)
            else:
                self._run_job_success(job.id, f.result())
        self._pool.submit(run_each).add_done_callback(done)


def scheduled_run(model: str) -> str | None:
    """The scheduled job: claim this fire time and start the run as a JobRunner job (returns at once)."""
    env, fire = _ENV, getattr(_FIRE, "time", None)
    if env is None:
        log.warning("evaluation.no_controller", extra={"model": model})
        return None
    try:
        run = start_evaluation(env, model, "schedule", fire)
    except NoChampion as exc:
        log.info("evaluation.skipped", extra={"model": model, "reason": str(exc)})
        return None
    return run.id if run else None


def policies_from_settings(settings) -> Callable[[str], Any]:
    from policies.loader import load_policy, watch_policy_ref
    refs = {w.name: w.policy for w in settings.models}
    return lambda model: load_policy(watch_policy_ref(refs.get(model, "default")))


def schedule_evaluations(scheduler, ctx, settings, policy_of: Callable[[str], Any] | None = None,
                         models: list[str] | None = None, *, gateway_url: str | None = None,
                         log_run: Callable[..., str] | None = None) -> list[str]:
    """Install the evaluation job store and one job per scheduled model on a STARTED scheduler
    (paused is fine); returns the scheduled models. Call again to apply changed policies: a job
    whose trigger is unchanged keeps its stored next fire time (so a missed run is not lost)."""
    if not scheduler.running:
        raise RuntimeError("schedule_evaluations needs a started scheduler: call it after scheduler.start()")
    db_url = settings.database_url()
    env = EvaluationEnv(ctx=ctx, store=EvaluationStore(sessionmaker(make_engine(db_url), expire_on_commit=False)),
                        gateway_url=gateway_url or settings.gateway_admin_url,
                        policy_of=policy_of or policies_from_settings(settings), owner=ctx.jobs.owner,
                        scheduler=scheduler, models=list(models or [w.name for w in settings.models]))
    if log_run is not None:
        env.log_run = log_run
    set_env(env)
    env.store.abandon_stale(ctx.clock())
    _add_once(scheduler.add_executor, FireTimeExecutor(max_workers=4), EXECUTOR)
    _add_once(scheduler.add_jobstore, SQLAlchemyJobStore(url=db_url), JOBSTORE)
    return _reconcile_jobs(scheduler, env)


def _add_once(add: Callable, thing: Any, alias: str) -> None:
    try:
        add(thing, alias)
    except ValueError:       # already there (a second call applies changed policies)
        pass


def _reconcile_jobs(scheduler, env: EvaluationEnv) -> list[str]:
    wanted = {}
    for model in env.models:
        policy = env.evaluation_policy(model)
        if policy.scheduled:
            wanted[job_id(model)] = (model, policy)
    for job in scheduler.get_jobs(jobstore=JOBSTORE):
        if job.id not in wanted:
            scheduler.remove_job(job.id, JOBSTORE)
    for jid, (model, policy) in wanted.items():
        trigger, current = policy.trigger(), scheduler.get_job(jid, JOBSTORE)
        options = dict(misfire_grace_time=policy.misfire_grace_seconds, coalesce=True, max_instances=1)
        if current is not None and str(current.trigger) == str(trigger):
            scheduler.modify_job(jid, JOBSTORE, **options)        # keeps its stored next fire time
            continue
        scheduler.add_job(scheduled_run, trigger, args=[model], id=jid, name=f"evaluate {model}",
                          jobstore=JOBSTORE, executor=EXECUTOR, replace_existing=True, **options)
    log.info("evaluations.scheduled", extra={"models": sorted(m for m, _ in wanted.values())})
    return sorted(m for m, _ in wanted.values())


def next_run_time(model: str) -> datetime | None:
    env = _ENV
    if env is None or env.scheduler is None or not env.scheduler.running:
        return None
    job = env.scheduler.get_job(job_id(model), JOBSTORE)
    return job.next_run_time if job else None
