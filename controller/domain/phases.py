"""Release phases. What each phase means (handler, targets, traffic, effects) is in phase_table."""
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
