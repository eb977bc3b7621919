"""One evaluation run of a model's live champion: claimed, locked, run as a job, recorded.

The same path for the schedule, the API and the CLI (`start_evaluation`). The work runs in a
JobRunner thread (ctx.jobs), never in a reconcile tick. Between chunks of items it checks that
the version is still the champion: when the champion changes mid-run the run is cancelled and
recorded as such (its figures would describe a version users no longer get).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Callable

from prometheus_client import Gauge

from controller.reconcile.context import Controller
from controller.reconcile.jobs import Cancelled, JobContext
from controller.registry.conventions import ALIAS_CHAMPION
from controller.scheduler.drift import SuiteFigures, baselines, compare
from controller.scheduler.mlflow_eval import log_evaluation
from controller.scheduler.scoring import ChampionChanged, GatewayScorer, NotServed
from controller.scheduler.store import (CANCELLED, FAILED, RUNNING, SKIPPED, SUCCEEDED, EvaluationRun,
                                        EvaluationStore)
from policies.evaluation import EvaluationPolicy
from policies.validators import compile_validators
from quantize.suites import load_suite

log = logging.getLogger(__name__)

DRIFT = Gauge("relctl_eval_drift", "1 while the live champion's last evaluation drifted past the policy's "
              "limits (accuracy or compliance), else 0", ["model"])
JOB_KIND = "evaluation"
DRIFT_EVENT = "evaluation_drift"
LEASE_SECONDS = 60.0


class NoChampion(LookupError):
    pass


@dataclass
class EvaluationEnv:
    """What evaluations need, built once by schedule_evaluations (or a test)."""
    ctx: Controller
    store: EvaluationStore
    gateway_url: str
    policy_of: Callable[[str], Any]          # model -> a Policy (its .evaluation and .validators)
    owner: str
    log_run: Callable[..., str] = log_evaluation
    scheduler: Any = None
    transport: Any = None                    # an httpx transport for unit tests; None: the network
    models: list[str] = field(default_factory=list)

    def evaluation_policy(self, model: str) -> EvaluationPolicy:
        return getattr(self.policy_of(model), "evaluation", None) or EvaluationPolicy()


def lease_seconds(policy: EvaluationPolicy) -> float:
    """How long a run's hold on its model lasts without renewal (renewed before each chunk of items).
    Short, so that a run whose controller was killed blocks the schedule for a minute, not for its
    whole timeout_seconds."""
    return min(policy.timeout_seconds, LEASE_SECONDS)


def start_evaluation(env: EvaluationEnv, model: str, trigger: str,
                     scheduled_for: datetime | None = None) -> EvaluationRun | None:
    """Claim and start a run of the champion; None when this fire time already ran.
    A run that finds another one holding the model's lock is recorded as skipped."""
    champion = env.ctx.registry.get_alias(model, ALIAS_CHAMPION)
    if champion is None:
        raise NoChampion(f"model {model!r} has no champion to evaluate")
    now = env.ctx.clock()
    env.store.abandon_stale(now)          # a run whose controller died lets go of the model once its lease ends
    run = env.store.claim(model, trigger, env.owner, now, scheduled_for)
    if run is None:
        log.info("evaluation.duplicate", extra={"model": model, "scheduled_for": str(scheduled_for)})
        return None
    env.store.update(run.id, version=champion)
    policy = env.evaluation_policy(model)
    if not env.store.acquire(model, run.id, env.owner, now, lease_seconds(policy)):
        holder = env.store.holder(model)
        env.store.finish(run.id, SKIPPED, now, reason=f"another evaluation of {model} is running "
                                                      f"({holder[0] if holder else 'unknown'})")
        return env.store.get(run.id)
    env.ctx.jobs.ensure(run.id, JOB_KIND, partial(_work, env, run.id, model, champion, trigger))
    return env.store.get(run.id)


def _work(env: EvaluationEnv, run_id: str, model: str, version: str, trigger: str, job: JobContext) -> dict:
    env.store.update(run_id, state=RUNNING)
    try:
        figures, drift, mlflow_run = _evaluate(env, run_id, model, version, trigger, job)
    except Cancelled as exc:
        env.store.finish(run_id, CANCELLED, env.ctx.clock(), reason=str(exc))
        raise
    except NotServed as exc:         # e.g. the first fire time after a start, before the route is applied
        env.store.finish(run_id, SKIPPED, env.ctx.clock(), reason=str(exc))
        return {"skipped": str(exc)}
    except Exception as exc:
        env.store.finish(run_id, FAILED, env.ctx.clock(), reason=str(exc) or type(exc).__name__)
        raise
    finally:
        env.store.release(model, run_id)
    env.store.finish(run_id, SUCCEEDED, env.ctx.clock(), figures={s: f.to_json() for s, f in figures.items()},
                     drift=drift, mlflow_run_id=mlflow_run, reason="; ".join(drift["reasons"]))
    return {"mlflow_run_id": mlflow_run, "drifted": drift["drifted"]}


def _evaluate(env: EvaluationEnv, run_id: str, model: str, version: str, trigger: str,
              job: JobContext) -> tuple[dict[str, SuiteFigures], dict, str]:
    policy = env.policy_of(model)
    ev = env.evaluation_policy(model)
    validators = compile_validators(getattr(policy, "validators", None) or [])

    deadline = env.ctx.clock() + timedelta(seconds=ev.timeout_seconds)

    def between_chunks() -> None:
        job.check()
        current = env.ctx.registry.get_alias(model, ALIAS_CHAMPION)
        if current != version:
            raise ChampionChanged(f"champion of {model} changed from {version} to {current} mid-run")
        now = env.ctx.clock()
        if now > deadline:
            raise Cancelled(f"ran past timeout_seconds={ev.timeout_seconds:g}")
        if not env.store.acquire(model, run_id, env.owner, now, lease_seconds(ev)):   # renew the lease
            raise Cancelled(f"lost the lock of {model} (no renewal within {lease_seconds(ev):g} s; "
                            f"another run took over)")

    scorer = GatewayScorer(env.gateway_url, model, version, parallel=ev.parallel, transport=env.transport)
    try:
        figures = {}
        for suite in ev.suites:
            figures[suite] = scorer.score(load_suite(suite), validators, between_chunks)
            job.progress(suites_done=len(figures))
        between_chunks()
    finally:
        scorer.close()
    info = env.ctx.registry.get_version(model, version)
    first = env.store.first_succeeded(model, version)
    base = baselines(info.tags, ev.suites, first.figures if first else None, first.id if first else "")
    drift = compare(figures, base, ev.max_accuracy_drop_pct, ev.max_compliance_drop_pct)
    ts_ms = int(env.ctx.clock().timestamp() * 1000)
    mlflow_run = env.log_run(env.ctx.registry.uri, model, version, info.source, run_id, trigger, figures, drift, ts_ms)
    env.ctx.registry.set_tags(model, version, {"relctl.eval.last_run_id": mlflow_run,
                                               "relctl.eval.drift": str(drift["drifted"]).lower()})
    report_drift(env.ctx, model, version, run_id, drift)
    return figures, drift, mlflow_run


def report_drift(ctx: Controller, model: str, version: str, run_id: str, drift: dict) -> bool:
    """Set the alert gauge; on drift append an event to the model's latest release. True when recorded."""
    DRIFT.labels(model).set(1 if drift["drifted"] else 0)
    if not drift["drifted"]:
        return False
    log.warning("evaluation.drift", extra={"model": model, "version": version, "reasons": drift["reasons"]})
    releases = ctx.store.list(model)
    if not releases:
        return False
    reason = f"version {version} drifted: " + "; ".join(drift["reasons"])
    return ctx.store.append_event(releases[0].id, DRIFT_EVENT, reason, {"version": version, "run_id": run_id, **drift},
                                  ctx.clock(), dedup_key=f"eval-drift:{run_id}")
