"""Fix the stable version's latency thresholds once, before the first canary window.

They come from the stable track's histogram in this release so far (the shadow phase).
Each quantile's threshold is the bucket edge whose stable exceedance rate is nearest the
quantile's (the edge at or above it, or the one below when nearer by ratio: latency.
nearest_edge). The gateway's edges are about 25 % apart, so over realistic latency
distributions the stable's real exceedance rate over "p99" lies within about 0.3–3 %,
median 1 % (bench/blast_radius.py --real-only measures it; the notes record it per
release), and two quantiles never share an edge (the higher one moves up: testing one
threshold twice would only split alpha). SLO objectives
(`analysis.slo`) are fixed here too, at their own seconds, or at the next lower edge when
the value is not an edge (more requests count as slow, on both tracks alike).
"""
from __future__ import annotations

import logging
import math

from controller.analysis import latency
from controller.analysis.providers.base import MetricProvider
from policies.analysis import AnalysisPolicy

log = logging.getLogger(__name__)


def fix_thresholds(provider: MetricProvider, model: str, release_id: str,
                   cfg: AnalysisPolicy) -> tuple[dict[str, float], list[str]]:
    """Threshold seconds per latency key, and notes on the keys that could not be fixed."""
    thresholds: dict[str, float] = {}
    notes: list[str] = []
    edges: dict[str, list[float]] = {}
    for kind in sorted({*cfg.latency_metrics, *(o.metric for o in cfg.slo)}):
        reading = provider.stable_latency(model, release_id, kind)
        if reading.error:
            notes.append(f"{kind}: {reading.error}")
            continue
        edges[kind] = sorted(le for le in reading.buckets if math.isfinite(le))
        if kind not in cfg.latency_metrics:
            continue
        total = reading.buckets.get(math.inf, 0.0)
        if total < cfg.latency_min_samples:
            notes.append(f"{kind}: {total:.0f} stable requests < {cfg.latency_min_samples} needed")
            continue
        _quantile_thresholds(kind, reading.buckets, cfg, thresholds, notes)
    for obj in cfg.slo:
        key = latency.slo_key(obj.metric, obj.max_seconds)
        thresholds[key] = _slo_edge(obj.max_seconds, edges.get(obj.metric), key, notes)
    log.info("analysis.thresholds_fixed", extra={"model": model, "thresholds": thresholds, "notes": notes})
    return thresholds, notes


def _quantile_thresholds(kind: str, buckets: dict[float, float], cfg: AnalysisPolicy,
                         thresholds: dict[str, float], notes: list[str]) -> None:
    total = buckets[math.inf]
    edges = sorted(le for le in buckets if math.isfinite(le))
    used = -math.inf
    for q in cfg.latency_quantiles:               # ascending (the policy sorts them)
        key = latency.metric_key(kind, q)
        edge = latency.nearest_edge(buckets, q)
        if edge is not None and edge <= used:
            edge = next((le for le in edges if le > used), None)
        if edge is None:
            notes.append(f"{key}: percentile beyond the last finite bucket")
            continue
        thresholds[key], used = edge, edge
        notes.append(f"{key}: {edge:g} s, stable over it {1 - buckets[edge] / total:.2%} (nominal {1 - q:.2%})")


def _slo_edge(seconds: float, edges: list[float] | None, key: str, notes: list[str]) -> float:
    if not edges or any(math.isclose(le, seconds, rel_tol=1e-9) for le in edges):
        return seconds
    lower = [le for le in edges if le < seconds]
    if not lower:
        notes.append(f"{key}: {seconds:g} s is below every bucket edge; kept as is")
        return seconds
    notes.append(f"{key}: {seconds:g} s is not a bucket edge; using {lower[-1]:g} s")
    return lower[-1]
