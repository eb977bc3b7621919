"""Fix the stable version's latency thresholds once, before the first canary window.

They come from the stable track's histogram in this release so far (the shadow phase).
"""
from __future__ import annotations

import logging
import math

from controller.analysis import latency
from controller.analysis.providers.base import MetricProvider
from policies.analysis import AnalysisPolicy

log = logging.getLogger(__name__)


def fix_thresholds(provider: MetricProvider, model: str, release_id: str, cfg: AnalysisPolicy) -> tuple[dict[str, float], list[str]]:
    """Threshold seconds per latency key, and notes on the keys that could not be fixed."""
    thresholds: dict[str, float] = {}
    notes: list[str] = []
    for kind in cfg.latency_metrics:
        reading = provider.stable_latency(model, release_id, kind)
        if reading.error:
            notes.append(f"{kind}: {reading.error}")
            continue
        total = reading.buckets.get(math.inf, 0.0)
        if total < cfg.latency_min_samples:
            notes.append(f"{kind}: {total:.0f} stable requests < {cfg.latency_min_samples} needed")
            continue
        for q in cfg.latency_quantiles:
            edge = latency.threshold_from_buckets(reading.buckets, q)
            key = latency.metric_key(kind, q)
            if edge is None:
                notes.append(f"{key}: percentile beyond the last finite bucket")
            else:
                thresholds[key] = edge
    log.info("analysis.thresholds_fixed", extra={"model": model, "thresholds": thresholds, "notes": notes})
    return thresholds, notes
