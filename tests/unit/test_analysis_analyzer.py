"""The Analyzer's windows over cumulative counters, with a scripted provider and a fake clock."""
import json
import math
from datetime import datetime, timedelta, timezone

import pytest

from controller.analysis.analyzer import Analyzer
from controller.analysis.providers.base import HistogramReading
from controller.analysis.types import Decision, Measurement, ShadowCounts, TrackCounts
from policies.analysis import AnalysisPolicy

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


class ScriptedProvider:
    """Cumulative counters that the test moves forward; records the thresholds it was asked for."""

    def __init__(self):
        self.stable = TrackCounts()
        self.candidate = TrackCounts()
        self.shadow = ShadowCounts()
        self.error = None
        self.thresholds_seen = []
        self.histogram = {0.1: 50.0, 0.25: 95.0, 0.5: 99.5, math.inf: 100.0}

    def add(self, stable=(0, 0), candidate=(0, 0), pairs=(0, 0, 0)):
        s, c = self.stable, self.candidate
        self.stable = TrackCounts(s.requests + stable[0], s.errors + stable[1])
        self.candidate = TrackCounts(c.requests + candidate[0], c.errors + candidate[1])
        p = self.shadow
        self.shadow = ShadowCounts(p.pairs + pairs[0], p.only_candidate_failed + pairs[1],
                                   p.only_stable_failed + pairs[2])

    def read(self, model, release_id, thresholds):
        self.thresholds_seen.append(dict(thresholds))
        if self.error:
            return Measurement(error=self.error)
        return Measurement(stable=self.stable, candidate=self.candidate, shadow=self.shadow)

    def stable_latency(self, model, release_id, kind):
        if kind == "ttft":
            return HistogramReading(error="no ttft series")
        return HistogramReading(buckets=dict(self.histogram))


def at(seconds):
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def setup():
    provider = ScriptedProvider()
    cfg = AnalysisPolicy(settle_seconds=2, latency_min_samples=10)
    return provider, Analyzer(provider, cfg)


def test_settle_then_baseline_then_counts_since_baseline(setup):
    provider, an = setup
    provider.add(stable=(5000, 50), candidate=(0, 0))          # history before the canary
    st = an.start_window("m", "r1", 0.05, at(0), {})
    v, st = an.judge("m", "r1", "canary", at(1), st)
    assert v.decision == Decision.CONTINUE and v.reason.startswith("settling")
    v, st = an.judge("m", "r1", "canary", at(2), st)
    assert v.reason == "window baseline taken"
    provider.add(stable=(1900, 19), candidate=(100, 10))
    v, st = an.judge("m", "r1", "canary", at(22), st)
    assert v.evidence["counts"]["candidate"] == {"requests": 100, "errors": 10, "errors_by_class": {},
                                                 "latency_over": {}, "overload": 0, "sessions": 0,
                                                 "sessions_failed": 0}
    assert v.evidence["elapsed_seconds"] == 20
    json.dumps(st)


def test_thresholds_fixed_once_before_the_first_canary_window(setup):
    provider, an = setup
    st = an.start_window("m", "r1", 0.0, at(0), {})
    assert st["thresholds"] is None
    st = an.start_window("m", "r1", 0.05, at(30), st)
    assert st["thresholds"] == {"e2e_p50": 0.1, "e2e_p95": 0.25, "e2e_p99": 0.5}
    assert any("ttft" in n for n in st["threshold_notes"])
    provider.histogram = {0.1: 100.0, math.inf: 100.0}
    st = an.start_window("m", "r1", 0.25, at(60), st)
    assert st["thresholds"]["e2e_p50"] == 0.1 and st["thresholds"]["e2e_p99"] == 0.5


def test_bad_candidate_rolls_back_and_evidence_survives_a_step_change(setup):
    provider, an = setup
    st = an.start_window("m", "r1", 0.05, at(0), {})
    _, st = an.judge("m", "r1", "canary", at(3), st)          # baseline
    provider.add(stable=(1900, 19), candidate=(100, 4))
    v, st = an.judge("m", "r1", "canary", at(23), st)
    assert v.decision == Decision.CONTINUE
    first = v.evidence["metrics"]["errors"]["log_e"]
    st = an.start_window("m", "r1", 0.25, at(24), st)       # step 2: step 1 is closed, not lost
    assert len(st["closed"]) == 1 and st["closed"][0]["candidate"]["errors"] == 4
    _, st = an.judge("m", "r1", "canary", at(27), st)
    provider.add(stable=(750, 7), candidate=(250, 12))
    v, st = an.judge("m", "r1", "canary", at(37), st)
    assert v.decision == Decision.ROLLBACK
    assert v.evidence["windows"] == 2 and v.evidence["metrics"]["errors"]["log_e"] > first


def test_missing_metrics_are_inconclusive_then_pause(setup):
    provider, an = setup
    st = an.start_window("m", "r1", 0.05, at(0), {})
    provider.error = "connection refused"
    v, st = an.judge("m", "r1", "canary", at(5), st)
    assert v.decision == Decision.INCONCLUSIVE and "connection refused" in v.reason
    v, st = an.judge("m", "r1", "canary", at(100), st)
    assert v.decision == Decision.INCONCLUSIVE
    v, st = an.judge("m", "r1", "canary", at(126), st)
    assert v.decision == Decision.PAUSE and "inconclusive for 121 s" in v.reason
    provider.error = None
    v, st = an.judge("m", "r1", "canary", at(130), st)
    assert v.decision == Decision.CONTINUE and st["inconclusive_since"] is None


def test_counter_reset_restarts_the_window_and_keeps_evidence(setup):
    provider, an = setup
    provider.add(stable=(1000, 10), candidate=(50, 1))
    st = an.start_window("m", "r1", 0.05, at(0), {})
    _, st = an.judge("m", "r1", "canary", at(3), st)
    provider.add(stable=(190, 2), candidate=(10, 1))
    _, st = an.judge("m", "r1", "canary", at(5), st)
    provider.stable, provider.candidate = TrackCounts(5, 0), TrackCounts(1, 0)   # gateway restarted
    v, st = an.judge("m", "r1", "canary", at(7), st)
    assert v.decision == Decision.INCONCLUSIVE and "reset" in v.reason
    assert st["closed"][-1]["candidate"] == {"requests": 10, "errors": 1, "errors_by_class": {}, "latency_over": {},
                                             "overload": 0, "sessions": 0, "sessions_failed": 0}
    provider.add(stable=(95, 1), candidate=(5, 0))
    v, st = an.judge("m", "r1", "canary", at(9), st)
    assert v.evidence["counts"]["candidate"]["requests"] == 5 and v.evidence["windows"] == 2


def test_shadow_phase_judges_pairs(setup):
    provider, an = setup
    st = an.start_window("m", "r1", 0.0, at(0), {})
    _, st = an.judge("m", "r1", "shadow", at(3), st)
    provider.add(stable=(600, 6), pairs=(600, 20, 1))
    v, st = an.judge("m", "r1", "shadow", at(10), st)
    assert v.decision == Decision.ROLLBACK and v.evidence["only_candidate_failed"] == 20


def test_judge_without_a_window_is_inconclusive(setup):
    _, an = setup
    v, _ = an.judge("m", "r1", "canary", at(0), {})
    assert v.decision == Decision.INCONCLUSIVE


def test_state_passed_in_is_not_mutated(setup):
    provider, an = setup
    st = an.start_window("m", "r1", 0.05, at(0), {})
    frozen = json.dumps(st, sort_keys=True)
    an.judge("m", "r1", "canary", at(3), st)
    assert json.dumps(st, sort_keys=True) == frozen


def test_bad_share_is_rejected(setup):
    _, an = setup
    with pytest.raises(ValueError, match="canary_share"):
        an.start_window("m", "r1", 1.5, at(0), {})
