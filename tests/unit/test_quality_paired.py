"""The paired accuracy decision: exact Clopper-Pearson bounds checked against binomial tails,
hand-computed cases, and its error rates by simulation."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

from quantize.paired import cp_lower, cp_upper, decide, decision, drop_bounds, paired_drop


@pytest.mark.parametrize("k, n", [(1, 10), (7, 121), (60, 6000), (119, 120)])
def test_clopper_pearson_bounds_are_the_exact_binomial_tails(k: int, n: int) -> None:
    alpha = 0.04
    lo, hi = float(cp_lower(k, n, alpha)), float(cp_upper(k, n, alpha))
    assert binom.sf(k - 1, n, lo) == pytest.approx(alpha, rel=1e-6)     # P(X >= k | p = lo) = alpha
    assert binom.cdf(k, n, hi) == pytest.approx(alpha, rel=1e-6)        # P(X <= k | p = hi) = alpha


def test_edge_counts_give_the_closed_forms() -> None:
    assert float(cp_lower(0, 50, 0.05)) == 0.0 and float(cp_upper(50, 50, 0.05)) == 1.0
    assert float(cp_upper(0, 50, 0.05)) == pytest.approx(1 - 0.05 ** (1 / 50))
    assert float(cp_lower(50, 50, 0.05)) == pytest.approx(0.05 ** (1 / 50))
    assert float(cp_upper(0, 0, 0.05)) == 1.0   # no discordant pairs: nothing known about theta


def test_no_discordant_answers_on_121_items_is_not_evidence() -> None:
    # theta unknown (bound 1), discordance rate at most 1 - 0.01^(1/121) (20 % of alpha = 0.01)
    d = paired_drop(121, 0, 0, 0.95)
    assert d.drop_pct == 0 and d.ci_high_pct == pytest.approx(100 * (1 - 0.01 ** (1 / 121)))
    assert d.ci_high_pct == pytest.approx(3.734, abs=1e-3) and d.ci_low_pct == pytest.approx(-d.ci_high_pct)
    assert decision(d, 1.2) == "inconclusive"


def test_no_discordant_answers_on_6000_items_passes() -> None:
    d = paired_drop(6000, 0, 0, 0.95)
    assert d.ci_high_pct == pytest.approx(100 * (1 - 0.01 ** (1 / 6000))) and d.ci_high_pct < 0.08
    assert decision(d, 1.2) == "pass"


def test_all_discordant_answers_lost_hand_computed() -> None:
    # b = m = 10 of n = 1000: theta >= 0.04^(1/10), q >= CP lower of 10/1000 at 0.01
    n, b = 1000, 10
    q_lo = float(cp_lower(b, n, 0.01))
    lower, upper = drop_bounds(n, b, 0, 0.95)
    assert float(lower) == pytest.approx(q_lo * (2 * 0.04 ** (1 / b) - 1))
    assert float(upper) == pytest.approx(float(cp_upper(b, n, 0.01)))   # theta could be 1


def test_a_clear_loss_fails_and_a_clear_gain_passes() -> None:
    assert decision(paired_drop(6000, 300, 100, 0.95), 1.2) == "fail"      # drop 3.33 points
    assert decision(paired_drop(6000, 100, 300, 0.95), 1.2) == "pass"      # the build gained 3.33
    assert decision(paired_drop(6000, 120, 100, 0.95), 1.2) == "pass"      # 0.33, upper 0.90


def test_decide_boundaries() -> None:
    assert list(decide([-1.0, 1.2, 0.0], [1.19, 2.0, 1.2], 1.2)) == ["pass", "fail", "inconclusive"]


@pytest.mark.parametrize("bad", [(0, 0, 0), (10, 6, 5), (10, -1, 0)])
def test_impossible_counts_are_refused(bad) -> None:
    with pytest.raises(ValueError, match="impossible paired counts"):
        paired_drop(*bad, 0.95)


def test_false_pass_rate_at_the_limit_is_under_alpha_by_simulation() -> None:
    rng = np.random.default_rng(7)
    n, q, limit, runs = 2000, 0.06, 0.012, 4000
    p10, p01 = (q + limit) / 2, (q - limit) / 2          # true drop exactly at the limit
    counts = rng.multinomial(n, [p10, p01, 1 - q], size=runs)
    lower, upper = drop_bounds(n, counts[:, 0], counts[:, 1], 0.95)
    assert np.mean(upper * 100 < limit * 100) <= 0.05
    assert np.mean(lower <= limit) > 0.95                 # the lower bound covers too
