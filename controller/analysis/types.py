"""Value types shared by metric providers, judges and the reconcile loop.

Counts are *cumulative since the window started*: the reconcile loop subtracts the
counters read at the window's start from those read now. Everything here is frozen
and free of I/O.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Decision(StrEnum):
    CONTINUE = "continue"          # keep collecting evidence
    PROMOTE = "promote"            # "no regression" accepted, soak and sample size met
    ROLLBACK = "rollback"          # regression detected
    INCONCLUSIVE = "inconclusive"  # metrics missing or broken: neither pass nor fail
    PAUSE = "pause"                # e.g. sample-ratio mismatch: a human must look
    # The environment is unhealthy (the stable's own error rate far above its baseline, or
    # pool-wide overload answers): evidence keeps accumulating, but the step must neither
    # advance nor roll back on the hard guard; decide() treats it like CONTINUE without
    # counting the held time toward the step's minimum duration.
    HOLD = "hold"


@dataclass(frozen=True)
class TrackCounts:
    """What one track (stable or candidate) served during a window."""
    requests: int = 0
    errors: int = 0                                   # the version's error classes together (not overload)
    errors_by_class: dict[str, int] = field(default_factory=dict)  # http_5xx, timeout, empty_output, validator,
    #                                                                 overload
    latency_over: dict[str, int] = field(default_factory=dict)     # "e2e_p99" -> requests above the stable p99
    overload: int = 0              # 429/503 answers marked as the serving layer's flow control: not the version's
    sessions: int = 0              # distinct sessions first seen on this track (sticky routing)
    sessions_failed: int = 0       # of those, sessions that had at least one error


@dataclass(frozen=True)
class ShadowCounts:
    """Mirrored pairs: only discordant pairs carry information."""
    pairs: int = 0
    only_candidate_failed: int = 0
    only_stable_failed: int = 0


@dataclass(frozen=True)
class Window:
    """One stretch of constant intended split (a canary step or the shadow phase)."""
    canary_share: float            # intended share of traffic sent to the candidate (0 in shadow)
    elapsed_seconds: float
    stable: TrackCounts
    candidate: TrackCounts
    shadow: ShadowCounts = ShadowCounts()


@dataclass(frozen=True)
class Measurement:
    """A provider's answer: counts, or the reason there are none (a failed query is data)."""
    stable: TrackCounts | None = None
    candidate: TrackCounts | None = None
    shadow: ShadowCounts | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.stable is not None and self.candidate is not None


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)
