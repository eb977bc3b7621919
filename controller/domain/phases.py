"""Release phases and which transitions are legal."""
from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    PENDING = "pending"
    QUANTIZING = "quantizing"
    EVALUATING = "evaluating"
    DEPLOYING = "deploying"
    SHADOW = "shadow"
    CANARY = "canary"
    PROMOTING = "promoting"
    SUCCEEDED = "succeeded"
    PAUSED = "paused"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"
    ABORTED = "aborted"


TERMINAL = frozenset({Phase.SUCCEEDED, Phase.ROLLED_BACK, Phase.FAILED, Phase.ABORTED})
# Phases a user can pause or abort; promoting and rolling_back finish on their own.
INTERRUPTIBLE = frozenset({Phase.PENDING, Phase.QUANTIZING, Phase.EVALUATING, Phase.DEPLOYING,
                           Phase.SHADOW, Phase.CANARY})

_ALLOWED: dict[Phase, frozenset[Phase]] = {
    Phase.PENDING: frozenset({Phase.QUANTIZING, Phase.DEPLOYING}),
    Phase.QUANTIZING: frozenset({Phase.EVALUATING}),
    Phase.EVALUATING: frozenset({Phase.DEPLOYING}),
    Phase.DEPLOYING: frozenset({Phase.SHADOW, Phase.CANARY}),
    Phase.SHADOW: frozenset({Phase.CANARY, Phase.ROLLING_BACK}),
    Phase.CANARY: frozenset({Phase.CANARY, Phase.PROMOTING, Phase.ROLLING_BACK}),
    Phase.PROMOTING: frozenset({Phase.SUCCEEDED}),
    Phase.ROLLING_BACK: frozenset({Phase.ROLLED_BACK}),
    Phase.PAUSED: frozenset(INTERRUPTIBLE),
}


def can_transition(src: Phase, dst: Phase) -> bool:
    if src in TERMINAL:
        return False
    if dst == Phase.FAILED or (dst in (Phase.PAUSED, Phase.ABORTED) and src in INTERRUPTIBLE | {Phase.PAUSED}):
        return True
    return dst in _ALLOWED.get(src, frozenset())
