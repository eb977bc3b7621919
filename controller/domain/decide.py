"""The release state machine as one pure function: decide(release, observations, policy).

No I/O and no clock here: "now" arrives in the observations, so every rule is a
table-driven unit test.
"""
from __future__ import annotations

from controller.analysis.types import Decision as Verdict_
from controller.domain.phases import INTERRUPTIBLE, TERMINAL, Phase
from controller.domain.release import Decision, Observations, Release, UserAction
from policies.schema import Policy


def decide(release: Release, obs: Observations, policy: Policy) -> Decision:
    if release.phase in TERMINAL:
        return _stay(release)
    user = _user_action(release)
    if user is not None:
        return user
    handler = _HANDLERS.get(release.phase)
    return handler(release, obs, policy) if handler else _stay(release)


def _stay(r: Release, reason: str = "") -> Decision:
    return Decision(r.phase, r.step_index, reason or r.reason, r.paused_from)


def _go(r: Release, phase: Phase, reason: str, step: int = 0, new_window: bool = False) -> Decision:
    return Decision(phase, step, reason, None, new_window)


def _user_action(r: Release) -> Decision | None:
    action = r.requested_action
    if action is None:
        return None
    active = r.phase in INTERRUPTIBLE
    if action == UserAction.ABORT and (active or r.phase == Phase.PAUSED):
        return Decision(Phase.ABORTED, r.step_index, "aborted by user", clear_action=True)
    if action == UserAction.PAUSE and active:
        return Decision(Phase.PAUSED, r.step_index, f"paused by user in {r.phase}", r.phase, clear_action=True)
    if action == UserAction.RESUME and r.phase == Phase.PAUSED and r.paused_from:
        return Decision(r.paused_from, r.step_index, f"resumed into {r.paused_from}", None,
                        new_window=r.paused_from in (Phase.SHADOW, Phase.CANARY), clear_action=True)
    if action == UserAction.PROMOTE and r.phase in (Phase.SHADOW, Phase.CANARY, Phase.PAUSED):
        return Decision(Phase.PROMOTING, r.step_index, "promoted by user", clear_action=True)
    # An action that does not apply to this phase is dropped, with the reason recorded.
    return Decision(r.phase, r.step_index, f"ignored {action.value}: not possible in {r.phase}",
                    r.paused_from, clear_action=True)


def _pending(r: Release, obs: Observations, policy: Policy) -> Decision:
    if policy.quantize.enabled:
        return _go(r, Phase.QUANTIZING, f"quantizing with {policy.quantize.backend}")
    return _go(r, Phase.DEPLOYING, "quantization disabled by policy")


def _quantizing(r: Release, obs: Observations, policy: Policy) -> Decision:
    if obs.build is None:
        return _stay(r)
    if not obs.build.ok:
        return _go(r, Phase.FAILED, f"quantization failed: {obs.build.error}")
    return _go(r, Phase.EVALUATING, f"quantized build registered as version {obs.build.version}")


def _evaluating(r: Release, obs: Observations, policy: Policy) -> Decision:
    if obs.gate is None:
        return _stay(r)
    if not obs.gate.ok:
        return _go(r, Phase.FAILED, obs.gate.reason)
    return _go(r, Phase.DEPLOYING, obs.gate.reason)


def _deploying(r: Release, obs: Observations, policy: Policy) -> Decision:
    dep = obs.deployment
    if dep is None or dep.state == "starting":
        waited = (obs.now - r.phase_started_at).total_seconds()
        if waited > policy.deploy_timeout_seconds:
            return _go(r, Phase.FAILED, f"candidate not ready after {waited:.0f} s")
        return _stay(r)
    if dep.state == "failed":
        return _go(r, Phase.FAILED, f"deployment failed: {dep.detail}")
    if policy.shadow.duration_seconds > 0:
        return _go(r, Phase.SHADOW, "candidate ready; mirroring live traffic", new_window=True)
    return _go(r, Phase.CANARY, _step_reason(policy, 0), 0, new_window=True)


def _shadow(r: Release, obs: Observations, policy: Policy) -> Decision:
    verdict = obs.verdict
    if verdict and verdict.decision == Verdict_.ROLLBACK:
        return _go(r, Phase.ROLLING_BACK, f"shadow analysis: {verdict.reason}")
    if verdict and verdict.decision == Verdict_.PAUSE:
        return Decision(Phase.PAUSED, r.step_index, f"shadow analysis: {verdict.reason}", r.phase)
    elapsed = (obs.now - r.phase_started_at).total_seconds()
    passing = verdict is not None and verdict.decision in (Verdict_.CONTINUE, Verdict_.PROMOTE)
    if elapsed >= policy.shadow.duration_seconds and passing:
        return _go(r, Phase.CANARY, _step_reason(policy, 0), 0, new_window=True)
    return _stay(r)


def _canary(r: Release, obs: Observations, policy: Policy) -> Decision:
    verdict = obs.verdict
    if verdict is None:
        return _stay(r)
    if verdict.decision == Verdict_.ROLLBACK:
        return _go(r, Phase.ROLLING_BACK, f"canary step {r.step_index + 1}: {verdict.reason}", r.step_index)
    if verdict.decision == Verdict_.PAUSE:
        return Decision(Phase.PAUSED, r.step_index, f"canary analysis: {verdict.reason}", r.phase)
    elapsed = (obs.now - r.phase_started_at).total_seconds()
    if verdict.decision != Verdict_.PROMOTE or elapsed < policy.canary.step_seconds:
        return _stay(r)
    nxt = r.step_index + 1
    if nxt < len(policy.canary.steps):
        return _go(r, Phase.CANARY, _step_reason(policy, nxt), nxt, new_window=True)
    return _go(r, Phase.PROMOTING, f"all canary steps passed: {verdict.reason}", r.step_index)


def _promoting(r: Release, obs: Observations, policy: Policy) -> Decision:
    return _go(r, Phase.SUCCEEDED, "candidate is the new champion", r.step_index)


def _rolling_back(r: Release, obs: Observations, policy: Policy) -> Decision:
    return Decision(Phase.ROLLED_BACK, r.step_index, r.reason)


def _step_reason(policy: Policy, step: int) -> str:
    return f"canary step {step + 1}/{len(policy.canary.steps)}: {policy.canary.steps[step]:g}% of traffic"


_HANDLERS = {
    Phase.PENDING: _pending,
    Phase.QUANTIZING: _quantizing,
    Phase.EVALUATING: _evaluating,
    Phase.DEPLOYING: _deploying,
    Phase.SHADOW: _shadow,
    Phase.CANARY: _canary,
    Phase.PROMOTING: _promoting,
    Phase.ROLLING_BACK: _rolling_back,
}
