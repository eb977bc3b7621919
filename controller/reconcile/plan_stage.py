"""How long each canary step needs at the model's recent traffic: estimated once, while the
candidate deploys, as a job (about a second of CPU); its outcome is copied into the release's
status ("plan"), which the domain acts on (domain/low_traffic.py), and recorded as an event."""
from __future__ import annotations

from typing import Any

from controller.reconcile.context import Controller
from controller.reconcile.jobs import JobContext
from controller.domain.release import Release
from controller.store.jobs import FAILED, RUNNING, SUCCEEDED
from policies.schema import Policy

PLAN_JOB = "plan"
RECENT_SECONDS = 600
LAST_MINUTE = 60
SURGE = 3.0      # the last minute's rate this many times the 10 minutes': the traffic began (or rose) lately
# A deploying release whose candidate is ready waits this long for the estimate (about 1 s of CPU);
# a real deployment takes minutes, so it is there long before.
PLAN_WAIT_SECONDS = 10.0


def observe_plan(ctx: Controller, r: Release, policy: Policy, status: dict) -> bool:
    """Start the plan once per release and copy its outcome into `status["plan"]` (and the event
    people see); True while the release should wait for it: the job runs, for at most
    PLAN_WAIT_SECONDS of deploying, or its plan is stored by this tick and acted on from the next,
    read back from the store. A provider that cannot tell the recent traffic plans nothing."""
    if "plan" in r.status or getattr(ctx.metrics, "recent_traffic", None) is None:
        return False
    job = ctx.jobs.ensure(r.id, PLAN_JOB, lambda jc: _plan(ctx, r, policy, jc))
    if job.state == RUNNING and (ctx.clock() - r.phase_started_at).total_seconds() <= PLAN_WAIT_SECONDS:
        return True
    if job.state == RUNNING:     # a slow estimate is not waited for: the release goes on as the policy says
        status["plan"] = {"planned": False, "why": f"the estimate was not ready within {PLAN_WAIT_SECONDS:.0f} s "
                                                   f"of deploying"}
    elif job.state == SUCCEEDED:
        status["plan"] = plan_status(job.result or {})
    elif job.state == FAILED:
        status["plan"] = {"planned": False, "why": f"the plan failed: {job.error}"}
    else:
        return False
    plan = status["plan"]
    ctx.store.append_event(r.id, "analysis.plan", plan.get("message") or f"no low-traffic plan: {plan['why']}",
                           {**(job.result or {}), "acted_on": plan}, ctx.clock(), dedup_key="plan")
    return bool(plan.get("planned"))


def plan_status(result: dict[str, Any]) -> dict[str, Any]:
    """What the release keeps of the plan job's result: the choice, the times, the message."""
    if not result.get("planned"):
        return {"planned": False, "why": str(result.get("why", "no plan"))}
    if not isinstance(result.get("summary"), dict):
        return {"planned": False, "why": "the plan job's result has no summary (an older controller's)"}
    return {"planned": True, **result["summary"]}


def _plan(ctx: Controller, r: Release, policy: Policy, jc: JobContext) -> dict[str, Any]:
    from controller.analysis.planning import plan_from_counts

    got = ctx.metrics.recent_traffic(r.model, RECENT_SECONDS)  # type: ignore[attr-defined]
    if not isinstance(got, tuple) or got[0] <= 0:
        return {"planned": False, "why": got if isinstance(got, str) else "no recent traffic"}
    seconds = RECENT_SECONDS
    # Counters that began within the 10 minutes (a new model, a restarted gateway) would read as
    # low traffic and hold a busy model in shadow: the last minute's rate wins when far higher.
    minute = ctx.metrics.recent_traffic(r.model, LAST_MINUTE)  # type: ignore[attr-defined]
    if isinstance(minute, tuple) and minute[0] / LAST_MINUTE > SURGE * got[0] / RECENT_SECONDS:
        got, seconds = minute, LAST_MINUTE
    plan = plan_from_counts(got[0], got[1], seconds, policy.canary.steps, policy.canary.step_seconds,
                            policy.analysis, shadow_seconds=policy.shadow.duration_seconds)
    return {"planned": True, **plan.event(), "window_seconds": seconds,
            "summary": {**plan.summary(), "window_seconds": seconds}}
