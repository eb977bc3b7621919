"""The metric-provider interface: cumulative per-track counters for one model and release.

A provider never raises for a failed or empty query: it returns the failure as data
(Measurement.error, HistogramReading.error), which the judge treats as inconclusive.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from controller.analysis.types import Measurement


@dataclass(frozen=True)
class HistogramReading:
    """Cumulative bucket counts of the stable track's latency: le -> count."""
    buckets: dict[float, float] = field(default_factory=dict)
    error: str | None = None


class MetricProvider(Protocol):
    def read(self, model: str, release_id: str, thresholds: Mapping[str, float]) -> Measurement:
        """Cumulative counters per track (live traffic) and shadow pairs for the release.

        `thresholds` maps latency keys ("e2e_p99") to seconds; each track's latency_over
        holds the requests slower than that threshold.
        """
        ...

    def stable_latency(self, model: str, release_id: str, kind: str) -> HistogramReading:
        """The stable track's cumulative latency histogram ("e2e" or "ttft") in this release so far
        (the shadow phase, when the stable serves all live traffic)."""
        ...
