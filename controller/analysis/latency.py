"""Latency as counts: requests over the stable version's percentiles, per track.

Thresholds are fixed once, before the first canary window, from the stable track's
histogram, on a bucket edge so that Prometheus' cumulative buckets give the exceedance
counts exactly (count − bucket{le=threshold}): the edge whose stable exceedance rate is
nearest the quantile's (`nearest_edge`).
"""
from __future__ import annotations

import math

KINDS = ("e2e", "ttft")


def metric_key(kind: str, quantile: float) -> str:
    """"e2e", 0.99 -> "e2e_p99"; 0.999 -> "e2e_p99.9"."""
    if kind not in KINDS:
        raise ValueError(f"unknown latency kind {kind!r}; known: {', '.join(KINDS)}")
    pct = f"{quantile * 100:.6g}"
    return f"{kind}_p{pct}"


def slo_key(kind: str, seconds: float) -> str:
    """"e2e", 0.5 -> "e2e_slo0.5": requests slower than an SLO's latency (not a stable quantile)."""
    if kind not in KINDS:
        raise ValueError(f"unknown latency kind {kind!r}; known: {', '.join(KINDS)}")
    return f"{kind}_slo{seconds:g}"


def is_quantile_key(key: str) -> bool:
    """True for a stable-quantile key ("e2e_p99"), False for an SLO key ("e2e_slo0.5")."""
    return "_slo" not in key


def quantile_of(key: str) -> float:
    """Inverse of metric_key for the quantile."""
    try:
        return float(key.rsplit("_p", 1)[1]) / 100.0
    except (IndexError, ValueError):
        raise ValueError(f"not a latency metric key: {key!r}") from None


def threshold_from_buckets(buckets: dict[float, float], quantile: float) -> float | None:
    """Smallest finite bucket edge at or above the stable's `quantile`; None if unknown.

    `buckets` maps an upper edge `le` to the cumulative count (Prometheus' _bucket series).
    """
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must lie in (0, 1), got {quantile}")
    edges = sorted(buckets)
    total = buckets.get(math.inf, max(buckets.values(), default=0.0))
    if total <= 0:
        return None
    for le in edges:
        if math.isfinite(le) and buckets[le] >= quantile * total:
            return le
    return None   # the percentile lies in the +Inf bucket: no usable edge


def nearest_edge(buckets: dict[float, float], quantile: float) -> float | None:
    """The finite bucket edge whose stable exceedance rate is nearest 1 − `quantile` by ratio: the
    edge at or above the quantile, or the one below it when that is nearer. With edges about 25 %
    apart, snapping up alone puts "p99" at 0.1–1 % exceedance on a narrow distribution; the nearer
    of the two neighbours keeps it within about 0.3–3 %. None if the quantile is unknown."""
    above = threshold_from_buckets(buckets, quantile)
    if above is None:
        return None
    total = buckets.get(math.inf, max(buckets.values(), default=0.0))
    below = [le for le in buckets if le < above]
    if not below:
        return above
    edge = max(below)
    nominal = 1 - quantile
    over_above, over_below = 1 - buckets[above] / total, 1 - buckets[edge] / total
    if over_above <= 0 or abs(math.log(over_below / nominal)) < abs(math.log(over_above / nominal)):
        return edge
    return above


def effect_for(quantile: float, wanted: float) -> float:
    """A rate ratio that stays possible: the exceedance rate (1−q)·effect cannot pass 1."""
    cap = (1 + 1 / (1 - quantile)) / 2     # halfway to the impossible ratio 1/(1−q)
    return min(wanted, cap)
