"""What each active phase decides from its observations (pure; one function per phase).

The phase table (phase_table.py) says which handler runs in which phase and which
targets it may reach; a property test checks every handler stays within them.
"""
from __future__ import annotations

from controller.analysis.types import Decision as Verdict_
from controller.domain.low_traffic import LowTrafficPlan, stored_plan
from controller.domain.phases import Phase
from controller.domain.release import Decision, Observations, Release
from policies.schema import Policy


def stay(r: Release, reason: str = "") -> Decision:
    return Decision(r.phase, r.step_index, reason or r.reason, r.paused_from)


def go(r: Release, phase: Phase, reason: str, step: int = 0, new_window: bool = False) -> Decision:
    return Decision(phase, step, reason, None, new_window)


def pause(r: Release, reason: str) -> Decision:
    return Decision(Phase.PAUSED, r.step_index, reason, r.phase)


def pending(r: Release, obs: Observations, policy: Policy) -> Decision:
    if policy.quantize.enabled:
        return go(r, Phase.QUANTIZING, f"quantizing with {policy.quantize.backend}")
    return go(r, Phase.DEPLOYING, "quantization disabled by policy")


def quantizing(r: Release, obs: Observations, policy: Policy) -> Decision:
    if obs.build is None:
        return stay(r)
    if not obs.build.ok:
        return go(r, Phase.FAILED, f"quantization failed: {obs.build.error}")
    return go(r, Phase.EVALUATING, f"quantized build registered as version {obs.build.version}")


def evaluating(r: Release, obs: Observations, policy: Policy) -> Decision:
    if obs.gate is None:
        return stay(r)
    if not obs.gate.ok:
        return go(r, Phase.FAILED, obs.gate.reason)
    return go(r, Phase.DEPLOYING, obs.gate.reason)


def deploying(r: Release, obs: Observations, policy: Policy) -> Decision:
    dep = obs.deployment
    if dep is None or dep.state == "starting":
        waited = (obs.now - r.phase_started_at).total_seconds()
        if waited > policy.deploy_timeout_seconds:
            return go(r, Phase.FAILED, f"candidate not ready after {waited:.0f} s")
        return stay(r)
    if dep.state == "failed":
        return go(r, Phase.FAILED, f"deployment failed: {dep.detail}")
    if obs.planning and (obs.now - r.phase_started_at).total_seconds() <= policy.deploy_timeout_seconds:
        return stay(r, "candidate ready; estimating how long each step needs at the recent traffic")
    plan = stored_plan(r.status)
    if plan is not None and plan.action == "shadow":
        return go(r, Phase.SHADOW, f"candidate ready; low traffic: kept in shadow with every request mirrored "
                                   f"until the paired judge decides, expected within {plan.announced_seconds:.0f} s",
                  new_window=True)
    if policy.shadow.duration_seconds > 0:
        return go(r, Phase.SHADOW, "candidate ready; mirroring live traffic", new_window=True)
    return go(r, Phase.CANARY, _step_reason(policy, 0), 0, new_window=True)


def _candidate_died(r: Release, obs: Observations) -> Decision | None:
    """A candidate whose server died (crash, OOM kill) is rolled back at once, with the pool's reason:
    its traffic would otherwise go to the stable alone and read as a skewed split, not as a fault."""
    if obs.candidate_down is None:
        return None
    where = "shadow" if r.phase == Phase.SHADOW else f"canary step {r.step_index + 1}"
    return go(r, Phase.ROLLING_BACK, f"{where}: the candidate's server is down: {obs.candidate_down}", r.step_index)


def shadow(r: Release, obs: Observations, policy: Policy) -> Decision:
    died = _candidate_died(r, obs)
    if died is not None:
        return died
    plan = stored_plan(r.status)
    if plan is not None and plan.action == "shadow":
        return _held_in_shadow(r, obs, plan)
    verdict = obs.verdict
    if verdict and verdict.decision == Verdict_.ROLLBACK:
        return go(r, Phase.ROLLING_BACK, f"shadow analysis: {verdict.reason}")
    if verdict and verdict.decision == Verdict_.PAUSE:
        return pause(r, f"shadow analysis: {verdict.reason}")
    elapsed = (obs.now - r.phase_started_at).total_seconds()
    passing = verdict is not None and verdict.decision in (Verdict_.CONTINUE, Verdict_.PROMOTE)
    if elapsed >= policy.shadow.duration_seconds and passing:
        return go(r, Phase.CANARY, _step_reason(policy, 0), 0, new_window=True)
    return stay(r)


def _held_in_shadow(r: Release, obs: Observations, plan: LowTrafficPlan) -> Decision:
    """The low-traffic plan's shadow: the paired judge decides the whole release."""
    verdict = obs.verdict
    if verdict and verdict.decision == Verdict_.ROLLBACK:
        return go(r, Phase.ROLLING_BACK, f"shadow analysis: {verdict.reason}")
    if verdict and verdict.decision == Verdict_.PAUSE:
        return pause(r, f"shadow analysis: {verdict.reason}")
    if verdict and verdict.decision == Verdict_.PROMOTE:
        return go(r, Phase.PROMOTING, f"low-traffic plan ({plan.requests_per_second:.3g} req/s): promoted from "
                                      f"shadow, canary steps skipped; {verdict.reason}")
    elapsed = (obs.now - r.phase_started_at).total_seconds()
    if elapsed > plan.announced_seconds:
        return pause(r, f"low-traffic plan: no decision in shadow within the announced "
                        f"{plan.announced_seconds:.0f} s")
    return stay(r)


def canary(r: Release, obs: Observations, policy: Policy) -> Decision:
    died = _candidate_died(r, obs)
    if died is not None:
        return died
    verdict = obs.verdict
    if verdict is None:
        return stay(r)
    if verdict.decision == Verdict_.ROLLBACK:
        return go(r, Phase.ROLLING_BACK, f"canary step {r.step_index + 1}: {verdict.reason}", r.step_index)
    if verdict.decision == Verdict_.PAUSE:
        return pause(r, f"canary analysis: {verdict.reason}")
    elapsed = (obs.now - r.phase_started_at).total_seconds()
    if verdict.decision != Verdict_.PROMOTE or elapsed < policy.canary.step_seconds:
        return stay(r)
    nxt = r.step_index + 1
    if nxt < len(policy.canary.steps):
        return go(r, Phase.CANARY, _step_reason(policy, nxt), nxt, new_window=True)
    return go(r, Phase.PROMOTING, f"all canary steps passed: {verdict.reason}", r.step_index)


def promoting(r: Release, obs: Observations, policy: Policy) -> Decision:
    """Ends once the registry shows the candidate as champion (the effect was applied)."""
    if obs.champion is not None and obs.champion == obs.serving_version:
        return go(r, Phase.SUCCEEDED, "candidate is the new champion", r.step_index)
    return stay(r)


def rolling_back(r: Release, obs: Observations, policy: Policy) -> Decision:
    """Ends once the router sends the candidate nothing (the effect was applied)."""
    if obs.candidate_weight == 0.0:
        return Decision(Phase.ROLLED_BACK, r.step_index, r.reason)
    return stay(r)


def _step_reason(policy: Policy, step: int) -> str:
    return f"canary step {step + 1}/{len(policy.canary.steps)}: {policy.canary.steps[step]:g}% of traffic"
