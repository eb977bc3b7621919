"""Active and recently finished releases as Prometheus series, for the release dashboard (phase annotations, weights,
the judge's e-value against its threshold). Read from the store at scrape time, so never stale.

    relctl_release_info{model, release, phase, candidate_version, stable_version}  1
        (finished releases stay for RECENT_SECONDS, so alerts on rollbacks see them at any scrape interval)
    relctl_release_phase_started_timestamp_seconds{model, release, phase}
    relctl_release_candidate_weight_percent{model, release}   (the weight the phase asks for)
    relctl_judge_e_value{model, release, test} / relctl_judge_threshold{model, release, test}
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable, Iterable

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from controller.report.extract import TERMINAL, verdict_points, weight_of

RECENT_SECONDS = 3600

class ReleaseDetails(Collector):
    def __init__(self, store, clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self._store = store              # controller.store.releases.ReleaseStore
        self._clock = clock

    def collect(self) -> Iterable[GaugeMetricFamily]:
        info = GaugeMetricFamily("relctl_release_info", "Active and recently finished releases (value 1)",
                                 labels=["model", "release", "phase", "candidate_version", "stable_version"])
        started = GaugeMetricFamily("relctl_release_phase_started_timestamp_seconds",
                                    "When the release entered its current phase", labels=["model", "release", "phase"])
        weight = GaugeMetricFamily("relctl_release_candidate_weight_percent",
                                   "Live traffic share the phase asks for the candidate", labels=["model", "release"])
        e_value = GaugeMetricFamily("relctl_judge_e_value", "The judge's latest e-value per test",
                                    labels=["model", "release", "test"])
        threshold = GaugeMetricFamily("relctl_judge_threshold", "The e-value at which the judge rolls back",
                                      labels=["model", "release", "test"])
        now = self._clock()
        for r in self._store.list():
            ended = getattr(r.phase, "value", r.phase) in TERMINAL
            if not ended or (now - r.phase_started_at).total_seconds() <= RECENT_SECONDS:
                self._add(r, info, started, weight, e_value, threshold)
        yield from (info, started, weight, e_value, threshold)

    def _add(self, r, info, started, weight, e_value, threshold) -> None:
        phase = getattr(r.phase, "value", r.phase)
        info.add_metric([r.model, r.id, phase, r.candidate_version, r.stable_version or ""], 1)
        started.add_metric([r.model, r.id, phase], r.phase_started_at.timestamp())
        steps = ((self._store.policy_of(r.id) or {}).get("canary") or {}).get("steps")
        paused_from = getattr(r.paused_from, "value", r.paused_from)
        cand, _ = weight_of(paused_from if phase == "paused" and paused_from else phase, r.step_index, None, steps)
        if cand is not None:
            weight.add_metric([r.model, r.id], cand)
        verdict = (r.status or {}).get("verdict") or {}
        for p in verdict_points(r.phase_started_at, verdict):
            e_value.add_metric([r.model, r.id, p.test], p.e_value)
            threshold.add_metric([r.model, r.id, p.test], p.threshold)


def register_release_details(store, registry=REGISTRY) -> ReleaseDetails:
    """Serve the series on `registry` (the controller's /metrics uses the default one)."""
    collector = ReleaseDetails(store)
    registry.register(collector)
    return collector
