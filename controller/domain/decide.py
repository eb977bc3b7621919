"""The release state machine as one pure function: decide(release, observations, policy).

No I/O and no clock here: "now" arrives in the observations, so every rule is a
table-driven unit test. Which handler runs, and which targets it may reach, is read from
the phase table.
"""
from __future__ import annotations

from controller.domain.handlers import stay
from controller.domain.low_traffic import acting_policy
from controller.domain.phase_table import INTERRUPTIBLE, PHASES, TERMINAL
from controller.domain.phases import Phase
from controller.domain.release import Decision, Observations, Release, UserAction
from policies.schema import Policy


def decide(release: Release, obs: Observations, policy: Policy) -> Decision:
    if release.phase in TERMINAL:
        return stay(release)
    user = _user_action(release)
    if user is not None:
        return user
    handler = PHASES[release.phase].handler
    return handler(release, obs, acting_policy(policy, release)) if handler else stay(release)


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
    serving = r.paused_from if r.phase == Phase.PAUSED else r.phase
    if action == UserAction.PROMOTE and serving in (Phase.SHADOW, Phase.CANARY):  # only a deployed candidate
        return Decision(Phase.PROMOTING, r.step_index, "promoted by user", clear_action=True)
    # An action that does not apply to this phase is dropped, with the reason recorded.
    return Decision(r.phase, r.step_index, f"ignored {action.value}: not possible in {r.phase}",
                    r.paused_from, clear_action=True)
