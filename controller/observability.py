"""The controller's own Prometheus metrics, served at /metrics by `relctl serve`."""
from __future__ import annotations

from typing import Callable, Iterable

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

TICK_SECONDS = Histogram("relctl_reconcile_tick_seconds", "Time of one reconcile tick of one release",
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
RELEASE_TICK_SECONDS = Gauge("relctl_release_last_tick_seconds", "Time of the last reconcile tick, per release",
                             ["release"])
RECONCILE_ERRORS = Counter("relctl_reconcile_errors", "Reconcile ticks that raised (the release is retried)")
RUNNING_JOBS = Gauge("relctl_jobs_running", "Long jobs (builds, evaluations, downloads) running in this process")
LAST_POLL = Gauge("relctl_registry_last_poll_timestamp_seconds",
                  "When the registry was last polled successfully, per model (lag = time() - this)", ["model"])
DECISION_TO_EFFECT = Histogram("relctl_decision_to_effect_seconds",
                               "From a saved phase change to its effects (weights, aliases) applied",
                               buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30))


class ReleasesByPhase(Collector):
    """relctl_releases{phase}: read from the store at scrape time, so it is never stale."""

    def __init__(self, count_by_phase: Callable[[], dict[str, int]]):
        self._count = count_by_phase

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily("relctl_releases", "Releases by phase", labels=["phase"])
        for phase, n in sorted(self._count().items()):
            family.add_metric([phase], n)
        yield family


def register_release_counts(count_by_phase: Callable[[], dict[str, int]]) -> None:
    REGISTRY.register(ReleasesByPhase(count_by_phase))
