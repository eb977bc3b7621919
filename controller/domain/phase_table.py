"""One table says what each phase means: its handler, the phases it may move to, the traffic
it wants, and the effects the world must show while the release is in it.

Effects are level-triggered: the reconcile loop saves a decision first, then applies the
effects of the *stored* phase on every tick until the world matches (idempotent calls), so
a lost race or a crash between save and effects never acts on a phase that was not saved.
Everything else (decide, routing, the loop, the champion keeper, the API) reads this table.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Callable

from controller.domain import handlers as h
from controller.domain.phases import Phase
from controller.domain.release import Decision, Observations, Release
from policies.schema import Policy

Handler = Callable[[Release, Observations, Policy], Decision]


class Traffic(StrEnum):
    NONE = "none"              # the release does not route; the champion keeper does
    STABLE = "stable"          # stable only
    MIRROR = "mirror"          # stable serves, live requests mirrored to the candidate (shadow)
    CANARY = "canary"          # the current canary step's share to the candidate
    CANDIDATE = "candidate"    # the candidate takes all traffic
    NEW_CHAMPION = "new_champion"  # the promoted candidate alone, as the model's stable track
    FROZEN = "frozen"          # paused: the traffic of the phase it was paused from


class Effect(StrEnum):
    ROUTE = "route"                        # the router's split equals the phase's traffic
    CANCEL_JOBS = "cancel_jobs"            # long work of the release stopped (quantization, evaluation)
    STOP_CANDIDATE = "stop_candidate"      # candidate, build and evaluation servers stopped
    STOP_STABLE = "stop_stable"            # the old champion's server stopped
    SET_CHAMPION = "set_champion"          # registry alias champion on the deployed version
    CLEAR_CHALLENGER = "clear_challenger"  # registry alias challenger removed


@dataclass(frozen=True)
class PhaseSpec:
    handler: Handler | None
    targets: frozenset[Phase]      # where decide may move (staying is always allowed)
    traffic: Traffic
    interruptible: bool = False    # a user may pause or abort it
    effects: tuple[Effect, ...] = ()


_USER = frozenset({Phase.PAUSED, Phase.ABORTED})
_ENDED_BADLY = (Effect.ROUTE, Effect.CANCEL_JOBS, Effect.STOP_CANDIDATE, Effect.CLEAR_CHALLENGER)

PHASES: dict[Phase, PhaseSpec] = {
    Phase.PENDING: PhaseSpec(h.pending, frozenset({Phase.QUANTIZING, Phase.DEPLOYING}) | _USER,
                             Traffic.NONE, interruptible=True),
    Phase.QUANTIZING: PhaseSpec(h.quantizing, frozenset({Phase.EVALUATING, Phase.FAILED}) | _USER,
                                Traffic.NONE, interruptible=True),
    Phase.EVALUATING: PhaseSpec(h.evaluating, frozenset({Phase.DEPLOYING, Phase.FAILED}) | _USER,
                                Traffic.NONE, interruptible=True),
    Phase.DEPLOYING: PhaseSpec(h.deploying, frozenset({Phase.SHADOW, Phase.CANARY, Phase.FAILED}) | _USER,
                               Traffic.STABLE, interruptible=True, effects=(Effect.ROUTE,)),
    Phase.SHADOW: PhaseSpec(h.shadow, frozenset({Phase.CANARY, Phase.ROLLING_BACK, Phase.PROMOTING}) | _USER,
                            Traffic.MIRROR, interruptible=True, effects=(Effect.ROUTE,)),
    Phase.CANARY: PhaseSpec(h.canary, frozenset({Phase.CANARY, Phase.PROMOTING, Phase.ROLLING_BACK}) | _USER,
                            Traffic.CANARY, interruptible=True, effects=(Effect.ROUTE,)),
    Phase.PAUSED: PhaseSpec(None, frozenset({Phase.PENDING, Phase.QUANTIZING, Phase.EVALUATING, Phase.DEPLOYING,
                                             Phase.SHADOW, Phase.CANARY, Phase.PROMOTING, Phase.ABORTED}),
                            Traffic.FROZEN, effects=(Effect.ROUTE, Effect.CANCEL_JOBS)),
    Phase.PROMOTING: PhaseSpec(h.promoting, frozenset({Phase.SUCCEEDED}), Traffic.CANDIDATE,
                               effects=(Effect.ROUTE, Effect.SET_CHAMPION, Effect.CLEAR_CHALLENGER)),
    Phase.ROLLING_BACK: PhaseSpec(h.rolling_back, frozenset({Phase.ROLLED_BACK}), Traffic.STABLE,
                                  effects=_ENDED_BADLY),
    Phase.SUCCEEDED: PhaseSpec(None, frozenset(), Traffic.NEW_CHAMPION,
                               effects=(Effect.SET_CHAMPION, Effect.CLEAR_CHALLENGER, Effect.ROUTE,
                                        Effect.STOP_STABLE)),
    Phase.ROLLED_BACK: PhaseSpec(None, frozenset(), Traffic.STABLE, effects=_ENDED_BADLY),
    Phase.FAILED: PhaseSpec(None, frozenset(), Traffic.STABLE, effects=_ENDED_BADLY),
    Phase.ABORTED: PhaseSpec(None, frozenset(), Traffic.STABLE, effects=_ENDED_BADLY),
}

TERMINAL = frozenset(p for p, spec in PHASES.items() if not spec.targets)
INTERRUPTIBLE = frozenset(p for p, spec in PHASES.items() if spec.interruptible)


def traffic_of(release: Release) -> Traffic:
    """The traffic a release wants now (a paused release keeps what it had)."""
    traffic = PHASES[release.phase].traffic
    if traffic == Traffic.FROZEN:
        return PHASES[release.paused_from].traffic if release.paused_from else Traffic.NONE
    return traffic


def owns_routes(release: Release) -> bool:
    """Whether the release, not the champion keeper, programs the model's routes now."""
    return release.phase not in TERMINAL and traffic_of(release) != Traffic.NONE


def can_transition(src: Phase, dst: Phase) -> bool:
    return src == dst or dst in PHASES[src].targets
