"""Hard guards: gross failures roll back at once, without waiting for the sequential test.

A guard compares the tracks with a valid test, not a rate against a noisy difference: the
candidate's error rate must exceed `max_error_rate` *and* its share of the errors must be
above its traffic share at level `guard_alpha` (the one-sided Beta-mixture e-value, which
may be checked at every tick). A shared outage, where both tracks fail alike, never fires
it; the analyzer also suppresses it while the environment is unhealthy.
"""
from __future__ import annotations

import math

from controller.analysis import beta_mixture
from controller.analysis.types import ShadowCounts, TrackCounts

GUARD_K0 = 2.0      # a flat-ish prior: the guard is for gross effects, caught from few errors


def canary_guard(stable: TrackCounts, candidate: TrackCounts, share: float, max_error_rate: float,
                 min_requests: int, alpha: float) -> str | None:
    """A reason to roll back now, or None."""
    if candidate.requests < min_requests:
        return None
    cand = candidate.errors / candidate.requests
    base = stable.errors / stable.requests if stable.requests else 0.0
    if cand <= max_error_rate or not _worse(candidate.errors, candidate.errors + stable.errors, share, alpha):
        return None
    return (f"hard guard: candidate error rate {cand:.1%} over {candidate.requests} requests "
            f"> {max_error_rate:.0%} (stable {base:.1%}; candidate's share of errors above its traffic share "
            f"at alpha {alpha:g})")


def shadow_guard(shadow: ShadowCounts, max_error_rate: float, min_pairs: int, alpha: float) -> str | None:
    if shadow.pairs < min_pairs:
        return None
    b, c = shadow.only_candidate_failed, shadow.only_stable_failed
    excess = b / shadow.pairs
    if excess <= max_error_rate or not _worse(b, b + c, 0.5, alpha):
        return None
    return (f"hard guard: only the candidate failed in {excess:.1%} of {shadow.pairs} "
            f"mirrored pairs > {max_error_rate:.0%}")


def _worse(s: int, n: int, share: float, alpha: float) -> bool:
    return beta_mixture.log_bayes_factor(s, n, share, GUARD_K0) >= -math.log(alpha)
