"""Real traffic through the real Analyzer tick by tick: shared outages, overload, sticky
sessions, SLOs and the stable's quantile thresholds (fake clock, scripted counters)."""
import math
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from controller.analysis.analyzer import Analyzer
from controller.analysis.judge import evaluate
from controller.analysis.providers.base import HistogramReading
from controller.analysis.types import Decision, Measurement, TrackCounts, Window
from policies.analysis import AnalysisPolicy

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


class Counters:
    """Cumulative per-track counters that the test moves forward, second by second."""

    def __init__(self, histogram=None):
        self.tracks = {"stable": TrackCounts(), "candidate": TrackCounts()}
        self.histogram = histogram or {0.1: 50.0, 0.25: 95.0, 0.5: 99.5, math.inf: 100.0}
        self.carry = {"stable": 0.0, "candidate": 0.0}

    def serve(self, track, requests, error_rate, overload=0, over=None):
        """`requests` with errors at `error_rate` spread evenly (fractions carried over)."""
        t = self.tracks[track]
        self.carry[track] += requests * error_rate
        errors = int(self.carry[track])
        self.carry[track] -= errors
        over = {k: t.latency_over.get(k, 0) + v for k, v in (over or {}).items()}
        self.tracks[track] = replace(t, requests=t.requests + requests, errors=t.errors + errors,
                                     overload=t.overload + overload, latency_over={**t.latency_over, **over})

    def read(self, model, release_id, thresholds):
        return Measurement(stable=self.tracks["stable"], candidate=self.tracks["candidate"])

    def stable_latency(self, model, release_id, kind):
        return HistogramReading(buckets=dict(self.histogram))


def at(seconds):
    return T0 + timedelta(seconds=seconds)


def run(counters, an, seconds, each_second, state, start=0, tick=2):
    """Move traffic second by second and judge every `tick`; returns [(second, verdict)]."""
    out = []
    for t in range(start + 1, start + seconds + 1):
        each_second(t)
        if t % tick == 0:
            v, state = an.judge("m", "r", "canary", at(t), state)
            out.append((t, v))
    return out, state


def steady(counters, outage=(), p_outage=0.3, overload=0):
    def second(t):
        bad = t in outage
        rate = p_outage if bad else 0.01
        counters.serve("stable", 95, rate, overload=95 * overload // 100 if bad else 0)
        counters.serve("candidate", 5, rate, overload=5 * overload // 100 if bad else 0)
    return second


def test_a_shared_outage_holds_the_step_and_never_blames_the_candidate():
    c = Counters()
    an = Analyzer(c, AnalysisPolicy(settle_seconds=2, latency_metrics=[]))
    st = an.start_window("m", "r", 0.05, at(0), {})
    ticks, st = run(c, an, 400, steady(c, outage=range(201, 221)), st)
    decisions = {t: v.decision for t, v in ticks}
    assert Decision.ROLLBACK not in decisions.values()
    held = [t for t, v in ticks if v.decision == Decision.HOLD]
    assert held and 202 <= min(held) <= 206 and "stable unhealthy" in dict(ticks)[held[0]].reason
    assert all(decisions[t] != Decision.PROMOTE for t in range(202, 221 + 30, 2))   # held, then soaked again
    assert Decision.PROMOTE in {decisions[t] for t in range(252, 401, 2)}
    assert dict(ticks)[held[0]].evidence["environment"]["healthy"] is False


def test_pool_overload_holds_and_is_not_counted_as_errors():
    c = Counters()
    an = Analyzer(c, AnalysisPolicy(settle_seconds=2, latency_metrics=[]))
    st = an.start_window("m", "r", 0.05, at(0), {})
    ticks, st = run(c, an, 120, steady(c, outage=range(61, 81), p_outage=0.01, overload=20), st)
    reasons = [v.reason for t, v in ticks if v.decision == Decision.HOLD]
    assert reasons and all("pool overloaded" in r for r in reasons)
    counts = ticks[-1][1].evidence["counts"]["stable"]
    assert counts["overload"] == 20 * 19 and counts["errors"] < 0.011 * counts["requests"]   # shown, not errors


def test_holding_too_long_pauses():
    c = Counters()
    an = Analyzer(c, AnalysisPolicy(settle_seconds=2, latency_metrics=[], max_hold_seconds=30))
    st = an.start_window("m", "r", 0.05, at(0), {})
    ticks, _ = run(c, an, 200, steady(c, outage=range(101, 201)), st)
    assert ticks[-1][1].decision == Decision.PAUSE and "held for" in ticks[-1][1].reason


def test_a_real_regression_during_good_health_still_rolls_back():
    c = Counters()
    an = Analyzer(c, AnalysisPolicy(settle_seconds=2, latency_metrics=[]))
    st = an.start_window("m", "r", 0.05, at(0), {})

    def second(t):
        c.serve("stable", 95, 0.01)
        c.serve("candidate", 5, 0.05)
    ticks, _ = run(c, an, 120, second, st)
    assert Decision.ROLLBACK in {v.decision for _, v in ticks}


def sessions(track_req, track_err, sess, failed):
    return TrackCounts(track_req, track_err, sessions=sess, sessions_failed=failed)


def test_one_always_failing_user_cannot_roll_back_a_session_canary():
    # 400 sessions, 20 on the candidate; one of them sends 200 requests that all fail.
    stable = sessions(9500, 95, 380, 60)
    candidate = sessions(700, 203, 20, 4)
    w = [Window(0.05, 120, stable, candidate)]
    assert evaluate(w, AnalysisPolicy(), phase="canary").decision == Decision.ROLLBACK
    v = evaluate(w, AnalysisPolicy(unit="session"), phase="canary")
    assert v.decision != Decision.ROLLBACK and v.evidence["unit"] == "session"


def test_the_sample_ratio_check_counts_sessions_when_sticky():
    # A heavy user on the candidate lifts its request share to 12 %; sessions are at 5 %.
    w = [Window(0.05, 120, sessions(8800, 88, 950, 20), sessions(1200, 12, 50, 1))]
    assert evaluate(w, AnalysisPolicy(), phase="canary").decision == Decision.PAUSE
    assert evaluate(w, AnalysisPolicy(unit="session"), phase="canary").decision != Decision.PAUSE


SLO = AnalysisPolicy(latency_metrics=[], slo=[{"metric": "e2e", "quantile": 0.99, "max_seconds": 0.5}])


def slo_window(stable_over, cand_over):
    return [Window(0.05, 120, TrackCounts(9500, 95, latency_over={"e2e_slo0.5": stable_over}),
                   TrackCounts(500, 5, latency_over={"e2e_slo0.5": cand_over}))]


def test_breaking_the_slo_alone_rolls_back():
    v = evaluate(slo_window(40, 25), SLO, phase="canary")
    assert v.decision == Decision.ROLLBACK and v.reason.startswith("SLO broken: e2e p99 <= 0.5 s")
    assert v.evidence["slo"]["e2e_slo0.5"]["stable_breaks"] is False


def test_an_slo_both_tracks_break_is_not_the_candidates_fault():
    v = evaluate(slo_window(400, 25), SLO, phase="canary")
    assert v.decision != Decision.ROLLBACK and v.evidence["slo"]["e2e_slo0.5"]["stable_breaks"] is True


def test_slo_within_objective_does_not_roll_back():
    assert evaluate(slo_window(40, 4), SLO, phase="canary").decision != Decision.ROLLBACK


def test_quantiles_get_distinct_edges_and_slo_thresholds_are_fixed():
    # A mass at one edge puts p95 and p99 on 0.5 s; p99 moves up one edge.
    c = Counters(histogram={0.25: 90.0, 0.5: 99.5, 0.6: 99.8, 1.0: 100.0, math.inf: 100.0})
    cfg = AnalysisPolicy(settle_seconds=2, latency_min_samples=10, latency_metrics=["e2e"],
                         slo=[{"metric": "e2e", "quantile": 0.99, "max_seconds": 0.55}])
    st = Analyzer(c, cfg).start_window("m", "r", 0.05, at(0), {})
    assert st["thresholds"]["e2e_p95"] == 0.5 and st["thresholds"]["e2e_p99"] == 0.6
    assert st["thresholds"]["e2e_slo0.55"] == 0.5          # not an edge: the next lower one
    assert any("stable over it" in n for n in st["threshold_notes"])


def replay(sc, cfg, seed, prepare=lambda world: None):
    """One run of bench/real_traffic.py's simulated gateway through the real Analyzer."""
    import numpy as np

    from bench import real_traffic
    rng = np.random.default_rng(seed)
    original = real_traffic.World.__init__

    def init(self, *a):
        original(self, *a)
        prepare(self)
    real_traffic.World.__init__ = init
    try:
        return real_traffic.run_once(sc, cfg, [5, 25, 50], 30, 5, rng)
    finally:
        real_traffic.World.__init__ = original


def test_replay_an_always_failing_user_on_the_candidate():
    from bench.real_traffic import Scenario, policy

    def put_broken_user_on_candidate(world):
        world.broken = 0                       # the heaviest user, whose requests always fail
        world.points[0] = 0.01
    for unit, rolled_back in (("request", True), ("session", False)):
        sc = Scenario("sticky", users=300, unit=unit, horizon=120)
        out = replay(sc, policy(sc, AnalysisPolicy()), 7, put_broken_user_on_candidate)
        assert (out["outcome"] == "rollback") is rolled_back, (unit, out)


def test_replay_a_shared_outage_holds_and_promotes_later():
    from bench.real_traffic import Scenario, policy

    def outage_early(world):
        world.outage_at = 20
    sc = Scenario("outage", outage="errors", horizon=600)
    out = replay(sc, policy(sc, AnalysisPolicy()), 3, outage_early)
    assert out["held"] > 0 and out["outcome"] == "promote", out


def test_a_stable_always_high_error_rate_is_its_baseline_not_an_outage():
    c = Counters()
    for _ in range(60):                                   # before the canary: 15 % errors, every second
        c.serve("stable", 100, 0.15)
    an = Analyzer(c, AnalysisPolicy(settle_seconds=2, latency_metrics=[]))
    st = an.start_window("m", "r", 0.05, at(0), {})

    def second(t):
        c.serve("stable", 95, 0.15)
        c.serve("candidate", 5, 0.15)
    ticks, _ = run(c, an, 120, second, st)
    assert Decision.HOLD not in {v.decision for _, v in ticks}
