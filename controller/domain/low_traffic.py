"""Acting on the low-traffic plan (analysis/planning.py) stored with the release (pure).

The plan job's result is copied into the release's status ("plan") while it deploys, so
every later tick, and a restarted controller, reads the same choice from the store:

- `shadow`: the release stays in shadow with every request mirrored until the paired judge
  accepts (promote at once, no canary steps) or rejects (roll back); past the announced
  time it pauses;
- `lengthen`: every canary step lasts the plan's step time, and the judge's window limit
  grows with it, so a lengthened step is not paused as undecided;
- `none`, or no plan (the provider cannot tell the recent traffic): the policy as written.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Mapping

from controller.domain.release import Release
from policies.schema import Policy

Action = Literal["none", "lengthen", "shadow"]
# The judge may take this many times the plan's step time before a lengthened step pauses as
# undecided: the plan's time lets 90 % of healthy steps decide, the rest need a little longer.
WINDOW_FACTOR = 2.0


@dataclass(frozen=True)
class LowTrafficPlan:
    action: Action
    requests_per_second: float
    announced_seconds: float      # time to promotion told to the user, from the end of deploying
    step_seconds: float           # each canary step's time under `lengthen` (the policy's otherwise)
    message: str


def stored_plan(status: Mapping[str, Any]) -> LowTrafficPlan | None:
    """The plan the release acts on; None when there is none, or it cannot be acted on."""
    raw = status.get("plan")
    if not isinstance(raw, dict) or not raw.get("planned"):
        return None
    action = raw.get("action")
    try:
        rps, announced, step = (float(raw[k]) for k in ("requests_per_second", "announced_seconds", "step_seconds"))
    except (KeyError, TypeError, ValueError):
        return None
    if action not in ("none", "lengthen", "shadow"):
        return None
    if action != "none" and not (math.isfinite(announced) and math.isfinite(step) and step > 0):
        return None     # no bounded time to act on: the policy as written
    return LowTrafficPlan(action, rps, announced, step, str(raw.get("message", "")))


def holds_in_shadow(r: Release) -> bool:
    plan = stored_plan(r.status)
    return plan is not None and plan.action == "shadow"


def acting_policy(policy: Policy, r: Release) -> Policy:
    """The policy the release acts on: lengthened steps and judge windows per the stored plan.
    Returns `policy` itself when nothing changes (the common case costs no copy)."""
    plan = stored_plan(r.status)
    if plan is None or plan.action == "none":
        return policy
    if plan.action == "lengthen":
        window = max(policy.analysis.max_window_seconds, WINDOW_FACTOR * plan.step_seconds)
        step = plan.step_seconds
    else:  # shadow: the announced time, not the judge's window limit, bounds the mirrored shadow
        window = max(policy.analysis.max_window_seconds, plan.announced_seconds)
        step = policy.canary.step_seconds
    if (window, step) == (policy.analysis.max_window_seconds, policy.canary.step_seconds):
        return policy
    return policy.model_copy(update={
        "canary": policy.canary.model_copy(update={"step_seconds": step}),
        "analysis": policy.analysis.model_copy(update={"max_window_seconds": window})})
