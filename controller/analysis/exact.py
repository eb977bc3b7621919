"""Exact crossing probabilities of sequential tests on a stream of Bernoulli draws.

When each draw succeeds with a known probability (under "no regression" an error is the
candidate's with probability ρ, its traffic share), the law of the whole path is known, so
the chance that a boundary is ever crossed, and the mean counts when it is, can be
computed by dynamic programming instead of bounded. Ville's inequality (P ≤ 1/c for a test
martingale reaching c) is loose when the statistic jumps past c. `step_thresholds` gives
the judge thresholds that spend the whole budget; `false_alarm` shows how much of α a rule
really spends, and `sprt_floor` what the best test told the true effect needs (both for
the benchmark and the tests).
"""
from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from controller.analysis import error_label
from controller.analysis.error_label import CountSpec


@dataclass(frozen=True)
class Crossing:
    probability: float      # P(crossed within the steps given)
    mean_successes: float   # E[successes at the crossing; crossed] (a partial expectation)
    mean_steps: float       # E[draws at the crossing; crossed]
    alive: np.ndarray       # alive[s]: P(not crossed and s successes) after the last step
    by_step: np.ndarray     # by_step[n - 1]: P(crossed at draw n)


def first_crossing(min_successes: np.ndarray, p: float) -> Crossing:
    """Draws succeed with probability p; the boundary is crossed at draw n when the successes
    so far reach min_successes[n - 1] (a value above n: it cannot be crossed there)."""
    if not 0 < p < 1:
        raise ValueError(f"success probability must lie in (0, 1), got {p}")
    bound = np.asarray(min_successes, dtype=np.int64)
    draws = np.arange(1, len(bound) + 1)
    width = int(np.minimum(bound, draws + 1).max()) + 2      # alive states lie below the boundary
    alive = np.zeros(width)
    alive[0] = 1.0
    s = np.arange(width)
    by_step = np.zeros(len(bound))
    mean_successes = 0.0
    for n, k in zip(draws, bound):
        alive[1:] = alive[1:] * (1 - p) + alive[:-1] * p
        alive[0] *= 1 - p
        if k < width:
            by_step[n - 1] = alive[k:].sum()
            mean_successes += float(s[k:] @ alive[k:])
            alive[k:] = 0.0
    return Crossing(float(by_step.sum()), mean_successes, float(draws @ by_step), alive, by_step)


def min_candidate_events(rho: float, spec: CountSpec, max_events: int, threshold: float | None = None) -> np.ndarray:
    """For n = 1..max_events events, the fewest candidate events at which the count test's
    averaged e-value reaches `threshold` (default 1/alpha; n + 1: never). The e-value grows
    with the candidate's count at fixed n, so a vectorised bisection finds it."""
    n = np.arange(1, max_events + 1)
    lo, hi = np.zeros_like(n), n + 1
    threshold = math.log(threshold or 1 / spec.alpha)
    while (lo < hi).any():
        mid = np.minimum((lo + hi) // 2, n)
        crosses = error_label.log_e_values(mid.astype(float), (n - mid).astype(float), rho, spec) >= threshold
        crosses &= lo < hi
        hi = np.where(crosses, mid, hi)
        lo = np.where(~crosses & (lo < hi), mid + 1, lo)
    return lo


def false_alarm(rho: float, spec: CountSpec, max_events: int, threshold: float | None = None) -> tuple[float, float]:
    """The count test's false-alarm probability when checked after every event and rejecting
    at `threshold` (default 1/alpha): exact within max_events events, and an upper bound on
    ever (Ville's inequality from there on)."""
    threshold = threshold or 1 / spec.alpha
    crossing = first_crossing(min_candidate_events(rho, spec, max_events, threshold), rho)
    return crossing.probability, crossing.probability + _alive_e_value(crossing, rho, spec) / threshold


def _alive_e_value(crossing: Crossing, rho: float, spec: CountSpec) -> float:
    """E[e-value after the last event; not crossed]: what Ville's inequality bounds from there."""
    s = np.nonzero(crossing.alive > 0)[0]
    n = len(crossing.by_step)
    return float(crossing.alive[s] @ np.exp(error_label.log_e_values(s.astype(float), n - s, rho, spec)))


@dataclass(frozen=True)
class Floor:
    threshold: float        # the likelihood ratio at which the test rejects (1/alpha by Ville)
    false_alarm: float      # its exact false-alarm probability (an upper bound: ever)
    successes: float        # mean successes at rejection under the alternative (bad answers)
    draws: float            # mean draws at rejection under the alternative
    power: float            # P(rejected within the draws computed) under the alternative


def sprt_floor(p_null: float, p_alt: float, alpha: float, max_draws: int) -> Floor:
    """Wald's one-sided SPRT of p_null against p_alt > p_null with the lowest threshold whose
    exact false-alarm probability, ever, is at most alpha: the fewest draws on average under
    p_alt of any test with that false-alarm rate (Wald and Wolfowitz, 1948)."""
    if not 0 < p_null < p_alt < 1:
        raise ValueError(f"need 0 < p_null < p_alt < 1, got {p_null}, {p_alt}")
    up, down = math.log(p_alt / p_null), math.log((1 - p_alt) / (1 - p_null))
    n = np.arange(1, max_draws + 1)

    def bound(log_c: float) -> np.ndarray:
        steps: np.ndarray = np.maximum(np.ceil((log_c - n * down) / (up - down) - 1e-9), 0)
        return steps.astype(np.int64)

    def null_ever(log_c: float) -> float:
        crossing = first_crossing(bound(log_c), p_null)
        s = np.arange(len(crossing.alive))
        llr = s * up + (max_draws - s) * down
        return crossing.probability + float(crossing.alive @ np.exp(llr - log_c))

    lo, hi = 0.0, -math.log(alpha)         # Ville: the threshold 1/alpha always keeps alpha
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if null_ever(mid) <= alpha else (mid, hi)
    alt = first_crossing(bound(hi), p_alt)
    return Floor(math.exp(hi), null_ever(hi), alt.mean_successes, alt.mean_steps, alt.probability)


@dataclass(frozen=True)
class Thresholds:
    """The e-values at which the count test rolls back, and its false-alarm bound."""
    first: float            # within the first canary step (no evidence carried in)
    later: float            # in later steps, on the evidence carried over
    false_alarm: float      # upper bound on the false-rollback probability over the whole canary


def ville(alpha: float) -> Thresholds:
    return Thresholds(1 / alpha, 1 / alpha, alpha)


_computed: dict[tuple[float, CountSpec, float, int], Thresholds] = {}
_one_at_a_time = threading.Lock()


def step_thresholds(rho: float, spec: CountSpec, later_factor: float, max_events: int = 1000) -> Thresholds:
    """`_step_thresholds`, cached (a few shares and metrics: a handful of entries). A miss is
    computed under a lock, so when many canaries start together the first computes each
    share's thresholds and the others wait for it instead of all computing it; a hit takes
    no lock (every judgment asks)."""
    key = (rho, spec, later_factor, max_events)
    hit = _computed.get(key)
    if hit is None:
        with _one_at_a_time:
            hit = _computed.get(key) or _computed.setdefault(key, _step_thresholds(*key))
    return hit


def _step_thresholds(rho: float, spec: CountSpec, later_factor: float, max_events: int) -> Thresholds:
    """Spend the false-alarm budget that Ville's 1/alpha leaves unused in the first step.

    With threshold c in the first step (share rho, checked after every event) and C later,
    the false-rollback probability of the whole canary, whatever the later shares and
    whenever the first step ends, is at most
        1/C + sum_{n <= N} P(cross c at event n) (1 - W_n/C)^+ + E[W_N; not crossed] / c
    (W_n: the e-value at that crossing; the optional-stopping identity for the martingale
    before N, Ville's inequality for later steps and after N events). The smallest c is
    chosen for which some C <= later_factor/alpha keeps this <= alpha, then the smallest
    such C; with later_factor 1, or when no c fits, both stay 1/alpha. Cached: about
    0.3 s per share and metric.
    """
    alpha, ceiling = spec.alpha, later_factor / spec.alpha
    n = np.arange(1, max_events + 1)

    def bound_for(c: float) -> Callable[[float], float]:
        """The bound as a function of C, for first-step threshold c (one DP)."""
        k = min_candidate_events(rho, spec, max_events, threshold=c)
        crossing = first_crossing(k, rho)
        hit = crossing.by_step > 0
        # the e-value at the boundary state is the smallest a crossing at n can have: conservative
        w = np.exp(error_label.log_e_values(k[hit].astype(float), (n[hit] - k[hit]).astype(float), rho, spec))
        carried = _alive_e_value(crossing, rho, spec)
        return lambda big_c: 1 / big_c + float(crossing.by_step[hit] @ np.maximum(1 - w / big_c, 0)) + carried / c

    if later_factor <= 1 or bound_for(1 / alpha)(ceiling) > alpha:
        return ville(alpha)
    lo, hi = 1.0, 1 / alpha
    for _ in range(10):                     # the smallest first-step threshold that fits
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if bound_for(mid)(ceiling) <= alpha else (mid, hi)
    bound = bound_for(hi)
    lo_c, hi_c = 1 / alpha, ceiling         # the bound falls as C grows (sum of mass * W <= 1)
    for _ in range(20):
        mid = math.sqrt(lo_c * hi_c)
        lo_c, hi_c = (lo_c, mid) if bound(mid) <= alpha else (mid, hi_c)
    return Thresholds(hi, hi_c, bound(hi_c))
