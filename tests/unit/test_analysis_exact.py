"""Exact crossing probabilities (controller/analysis/exact.py) against hand sums and brute force."""
import math

import numpy as np
import pytest

from controller.analysis import error_label, exact
from controller.analysis.error_label import CountSpec


def test_first_crossing_matches_a_hand_sum():
    # Crossed at the first success within three draws.
    p = 0.3
    c = exact.first_crossing(np.array([1, 1, 1]), p)
    at = [p * (1 - p) ** (n - 1) for n in (1, 2, 3)]
    assert c.probability == pytest.approx(sum(at))
    assert c.mean_successes == pytest.approx(sum(at))
    assert c.mean_steps == pytest.approx(sum(n * a for n, a in zip((1, 2, 3), at)))
    assert c.alive.sum() == pytest.approx((1 - p) ** 3)


def test_first_crossing_respects_unreachable_steps():
    # Two successes needed, and only from the third draw on (2 > 1 draw, 3 > 2 draws).
    c = exact.first_crossing(np.array([2, 3, 2]), 0.5)
    assert c.probability == pytest.approx(0.5)          # P(at least 2 of 3)
    assert c.mean_steps == pytest.approx(1.5)


def test_first_crossing_rejects_a_bad_probability():
    with pytest.raises(ValueError, match="success probability"):
        exact.first_crossing(np.array([1]), 1.0)


def test_min_candidate_events_matches_brute_force():
    spec = CountSpec(alpha=0.05, beta=0.2, effect=2, k0=10, sprt_weight=0.6, large_effect=5, large_weight=0.3)
    rho, n = 0.1, 60
    table = error_label.log_e_table(n, rho, spec) >= -math.log(spec.alpha)
    expected = [next((s for s in range(m + 1) if table[s, m - s]), m + 1) for m in range(1, n + 1)]
    assert exact.min_candidate_events(rho, spec, n).tolist() == expected


def test_sprt_floor_spends_alpha_and_matches_simulation():
    p_null, p_alt, alpha = 0.2, 0.5, 0.1
    floor = exact.sprt_floor(p_null, p_alt, alpha, 400)
    assert floor.threshold < 1 / alpha                   # below Ville's threshold ...
    assert 0.9 * alpha < floor.false_alarm <= alpha      # ... and still within alpha
    assert floor.power == pytest.approx(1.0, abs=1e-6)
    up, down = math.log(p_alt / p_null), math.log((1 - p_alt) / (1 - p_null))
    rng = np.random.default_rng(3)

    def simulate(p: float):
        draws = rng.random((40000, 400)) < p
        s = draws.cumsum(axis=1)
        llr = s * up + (np.arange(1, 401) - s) * down
        hit = llr >= math.log(floor.threshold) - 1e-9
        first = hit.argmax(axis=1)
        return hit.any(axis=1), s[np.arange(len(s)), first], first + 1

    crossed, _, _ = simulate(p_null)
    assert crossed.mean() == pytest.approx(floor.false_alarm, abs=0.006)
    crossed, successes, steps = simulate(p_alt)
    assert successes[crossed].mean() == pytest.approx(floor.successes, rel=0.02)
    assert steps[crossed].mean() == pytest.approx(floor.draws, rel=0.02)


def test_sprt_floor_needs_an_alternative_above_the_null():
    with pytest.raises(ValueError, match="p_null < p_alt"):
        exact.sprt_floor(0.3, 0.2, 0.05, 100)


def _spec(alpha=0.05):
    return CountSpec(alpha=alpha, beta=0.2, effect=2, k0=10, sprt_weight=0.65, large_effect=5, large_weight=0.25)


def test_step_thresholds_factor_one_is_ville():
    assert exact.step_thresholds(0.05, _spec(), 1.0) == exact.ville(0.05)


def test_step_thresholds_lower_the_first_step_and_keep_alpha():
    t = exact.step_thresholds(0.05, _spec(), 1.25)
    assert 14 < t.first < 20 <= t.later <= 25
    assert 0.049 < t.false_alarm <= 0.05


def _false_rollback(first: float, later: float, first_events: int, later_events: int, runs=10000):
    """A/A, checked after every event: a first step at 5 % for `first_events` events, then a
    step at 50 %, evidence carried over as the judge does. The fraction of runs rolled back."""
    spec, rng = _spec(), np.random.default_rng(11)

    def walk(n, rho):
        s = np.cumsum(rng.random((runs, n)) < rho, axis=1)
        grid = np.arange(n + 1, dtype=float)
        return s, np.arange(1, n + 1) - s, error_label.window_logs(grid[:, None], grid[None, :], rho, spec)

    s1, f1, parts1 = walk(first_events, 0.05)
    hit = (error_label.combine(parts1, spec)[s1, f1] >= math.log(first)).any(axis=1)
    if later_events:
        s2, f2, parts2 = walk(later_events, 0.5)
        carried = parts1[:, s1[:, -1], f1[:, -1]][:, :, None]              # (3, runs, 1)
        hit |= (error_label.combine(parts2[:, s2, f2] + carried, spec) >= math.log(later)).any(axis=1)
    return hit.mean()


def test_calibrated_thresholds_stay_within_alpha_over_the_canary():
    t = exact.step_thresholds(0.05, _spec(), 1.25)
    for first_events in (30, 100, 300):
        assert _false_rollback(t.first, t.later, first_events, 300) <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 10000)


def test_calibrated_first_step_spends_the_budget_ville_leaves():
    t = exact.step_thresholds(0.05, _spec(), 1.25)
    calibrated, ville = _false_rollback(t.first, t.later, 1000, 0), _false_rollback(20, 20, 1000, 0)
    assert calibrated > ville + 0.005
