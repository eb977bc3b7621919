"""How long each canary step needs at the model's recent traffic: estimated once, while the
candidate deploys, as a job (about a second of CPU), and recorded as an event people see."""
from __future__ import annotations

from typing import Any

from controller.reconcile.context import Controller
from controller.reconcile.jobs import JobContext
from controller.domain.release import Release
from policies.schema import Policy

PLAN_JOB = "plan"
RECENT_SECONDS = 600


def ensure_plan(ctx: Controller, r: Release, policy: Policy) -> None:
    """Started once per release; a provider that cannot tell the recent traffic plans nothing."""
    if getattr(ctx.metrics, "recent_traffic", None) is not None:
        ctx.jobs.ensure(r.id, PLAN_JOB, lambda jc: _plan(ctx, r, policy, jc))


def _plan(ctx: Controller, r: Release, policy: Policy, jc: JobContext) -> dict[str, Any]:
    from controller.analysis.planning import plan_from_counts

    got = ctx.metrics.recent_traffic(r.model, RECENT_SECONDS)  # type: ignore[attr-defined]
    if not isinstance(got, tuple) or got[0] <= 0:
        return {"planned": False, "why": got if isinstance(got, str) else "no recent traffic"}
    plan = plan_from_counts(got[0], got[1], RECENT_SECONDS, policy.canary.steps, policy.canary.step_seconds,
                            policy.analysis)
    ctx.store.append_event(r.id, "analysis.plan", plan.message(), plan.event(), ctx.clock(), dedup_key="plan")
    return {"planned": True, **plan.event()}
