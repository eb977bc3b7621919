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
