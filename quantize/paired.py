"""The paired accuracy decision: parent and build answered the same items.

Only discordant items say anything about the drop: b items the parent got right and the
build got wrong, c the other way round. With q the probability that an item is discordant
and θ the probability that a discordant item is one the build lost, the true drop is
D = q·(2θ − 1). Given m = b + c discordant items, b ~ Binomial(m, θ) exactly (the
conditioning of McNemar's exact test), and m ~ Binomial(n, q). Both get exact
Clopper–Pearson bounds; the error budget α = 1 − confidence is split between them
(θ 80 %, q 20 %: q only scales the bound), so by the union bound each one-sided bound on D
holds with probability ≥ confidence, for any number of items and any discordance rate.
No normal approximation: with few items or no discordant answers the interval stays wide
(0 of 121 discordant still leaves D up to 3.7 points) instead of collapsing to zero.

Functions take numpy arrays as well as numbers, so bench/quality_gate.py can simulate
thousands of gates at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import beta

THETA_SHARE = 0.8   # of the error budget; the rest bounds the discordance rate

Decision = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class PairedDrop:
    items: int
    parent_only: int        # answers the build lost
    build_only: int         # answers the build gained
    drop_pct: float         # (b − c) / n, in accuracy points
    ci_low_pct: float       # one-sided lower bound at `confidence`
    ci_high_pct: float      # one-sided upper bound at `confidence`
    confidence: float


def cp_lower(k, n, alpha):
    """Exact one-sided Clopper–Pearson lower bound of a binomial proportion (0 when k = 0)."""
    k, n = np.asarray(k, float), np.asarray(n, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(k > 0, np.nan_to_num(beta.ppf(alpha, np.maximum(k, 1), n - k + 1)), 0.0)


def cp_upper(k, n, alpha):
    """Exact one-sided Clopper–Pearson upper bound (1 when k = n, including n = 0)."""
    k, n = np.asarray(k, float), np.asarray(n, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(k < n, np.nan_to_num(beta.ppf(1 - alpha, k + 1, np.maximum(n - k, 1)), nan=1.0), 1.0)


def drop_bounds(n, b, c, confidence: float):
    """(lower, upper) one-sided bounds on the drop D as a fraction (not points)."""
    alpha = 1.0 - confidence
    a_theta, a_q = alpha * THETA_SHARE, alpha * (1 - THETA_SHARE)
    m = np.asarray(b) + np.asarray(c)
    q_lo, q_hi = cp_lower(m, n, a_q), cp_upper(m, n, a_q)
    s_lo = 2 * cp_lower(b, m, a_theta) - 1          # bounds on 2θ − 1
    s_hi = 2 * cp_upper(b, m, a_theta) - 1
    upper = np.where(s_hi > 0, q_hi * s_hi, q_lo * s_hi)
    lower = np.where(s_lo > 0, q_lo * s_lo, q_hi * s_lo)
    return lower, upper


def paired_drop(items: int, parent_only: int, build_only: int, confidence: float) -> PairedDrop:
    if items <= 0 or parent_only < 0 or build_only < 0 or parent_only + build_only > items:
        raise ValueError(f"impossible paired counts: {parent_only} lost and {build_only} gained of {items} items")
    lower, upper = drop_bounds(items, parent_only, build_only, confidence)
    return PairedDrop(items, parent_only, build_only, (parent_only - build_only) / items * 100.0,
                      float(lower) * 100.0, float(upper) * 100.0, confidence)


def decide(ci_low_pct, ci_high_pct, limit_pct):
    """'pass' when the upper bound is under the limit, 'fail' when the lower bound reaches it."""
    return np.where(np.asarray(ci_high_pct) < limit_pct, "pass",
                    np.where(np.asarray(ci_low_pct) >= limit_pct, "fail", "inconclusive"))


def decision(drop: PairedDrop, limit_pct: float) -> Decision:
    return str(decide(drop.ci_low_pct, drop.ci_high_pct, limit_pct))
