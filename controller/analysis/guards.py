"""Hard guards: gross failures roll back at once, without waiting for the sequential test."""
from __future__ import annotations

from controller.analysis.types import ShadowCounts, TrackCounts


def canary_guard(stable: TrackCounts, candidate: TrackCounts, max_error_rate: float,
                 min_requests: int) -> str | None:
    """A reason to roll back now, or None. Also requires the candidate to be worse than stable,
    so a shared outage (both tracks failing) does not blame the candidate."""
    if candidate.requests < min_requests:
        return None
    cand = candidate.errors / candidate.requests
    base = stable.errors / stable.requests if stable.requests else 0.0
    if cand > max_error_rate and cand > base:
        return (f"hard guard: candidate error rate {cand:.1%} over {candidate.requests} requests "
                f"> {max_error_rate:.0%} (stable {base:.1%})")
    return None


def shadow_guard(shadow: ShadowCounts, max_error_rate: float, min_pairs: int) -> str | None:
    if shadow.pairs < min_pairs:
        return None
    excess = shadow.only_candidate_failed / shadow.pairs
    if excess > max_error_rate:
        return (f"hard guard: only the candidate failed in {excess:.1%} of {shadow.pairs} "
                f"mirrored pairs > {max_error_rate:.0%}")
    return None
