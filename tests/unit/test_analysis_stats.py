"""Exact values of the sequential statistics on small cases."""
import math

import numpy as np
import pytest
from scipy.special import betaincc, betaln

from controller.analysis import beta_mixture, error_label, sprt
from controller.analysis.bounds import rate_upper_bound
from controller.analysis.error_label import Segment, CountSpec


def test_theta_for_effect_matches_formula():
    assert sprt.theta_for_effect(0.05, 2) == pytest.approx(0.1 / 1.05)
    assert sprt.theta_for_effect(0.5, 3) == pytest.approx(0.75)


def test_sprt_log_likelihood_ratio_exact():
    # rho = 1/2, theta1 = 2/3: two candidate events and one stable -> (4/3)^2 * (2/3) = 32/27
    assert sprt.log_likelihood_ratio(2, 3, 0.5, 2 / 3) == pytest.approx(math.log(32 / 27))
    assert sprt.log_likelihood_ratio(0, 0, 0.5, 2 / 3) == 0.0


def test_sprt_accept_bound_is_walds():
    assert sprt.log_accept_bound(0.05, 0.2) == pytest.approx(math.log(0.2 / 0.95))


@pytest.mark.parametrize("bad", [dict(s=-1, n=3), dict(s=4, n=3)])
def test_sprt_rejects_impossible_counts(bad):
    with pytest.raises(ValueError, match="0 <= s <= n"):
        sprt.log_likelihood_ratio(bad["s"], bad["n"], 0.5, 0.6)


def test_sprt_rejects_bad_share_and_effect():
    with pytest.raises(ValueError, match="rho"):
        sprt.theta_for_effect(0.0, 2)
    with pytest.raises(ValueError, match="effect"):
        sprt.theta_for_effect(0.1, 1.0)


def test_two_sided_uniform_prior_bayes_factor_exact():
    # k0 = 2, rho = 1/2 is the uniform prior: BF = s!(n-s)!/(n+1)! * 2^n
    assert math.exp(beta_mixture.log_bayes_factor(3, 3, 0.5, 2, one_sided=False)) == pytest.approx(2.0)
    assert math.exp(beta_mixture.log_bayes_factor(2, 3, 0.5, 2, one_sided=False)) == pytest.approx(2 / 3)


def test_one_sided_uniform_prior_bayes_factor_exact():
    # prior uniform on (1/2, 1): BF = 2 * integral theta^s (1-theta)^(n-s) over (1/2, 1) / (1/2)^n
    assert math.exp(beta_mixture.log_bayes_factor(1, 1, 0.5, 2)) == pytest.approx(1.5)
    assert math.exp(beta_mixture.log_bayes_factor(0, 1, 0.5, 2)) == pytest.approx(0.5)
    assert math.exp(beta_mixture.log_bayes_factor(2, 3, 0.5, 2)) == pytest.approx(11 / 12)


def test_bayes_factor_matches_closed_form_for_small_share():
    s, n, rho, k0 = 4, 30, 0.05, 10
    a, b = k0 * rho, k0 * (1 - rho)
    expected = betaln(a + s, b + n - s) - betaln(a, b) - s * math.log(rho) - (n - s) * math.log(1 - rho)
    assert beta_mixture.log_bayes_factor(s, n, rho, k0, one_sided=False) == pytest.approx(expected)


def test_averaged_e_value_exact():
    spec = CountSpec(alpha=0.05, beta=0.2, effect=2, k0=2, sprt_weight=0.5)
    result = error_label.run([Segment(2, 3, 0.5)], spec)
    assert math.exp(result.log_e) == pytest.approx((32 / 27 + 11 / 12) / 2)
    assert not result.rejected and not result.sprt_accepts


def test_evidence_multiplies_across_windows():
    spec = CountSpec(alpha=0.05, beta=0.2, effect=2, k0=2, sprt_weight=1.0)
    one = error_label.run([Segment(2, 3, 0.5)], spec)
    two = error_label.run([Segment(2, 3, 0.5), Segment(2, 3, 0.5)], spec)
    assert two.log_sprt == pytest.approx(2 * one.log_sprt)
    assert two.current_llr == pytest.approx(one.log_sprt)


def test_rejects_when_e_value_reaches_one_over_alpha():
    spec = CountSpec(alpha=0.05, beta=0.2, effect=2, k0=10, sprt_weight=0.5)
    assert error_label.run([Segment(15, 72, 0.05)], spec).rejected
    assert not error_label.run([Segment(4, 72, 0.05)], spec).rejected


def test_accepts_no_regression_after_many_stable_only_events():
    spec = CountSpec(alpha=0.05, beta=0.2, effect=2, k0=10, sprt_weight=0.5)
    # each stable event adds log(0.9048/0.95) = -0.0488; the boundary is -1.558
    assert error_label.run([Segment(0, 32, 0.05)], spec).sprt_accepts
    assert not error_label.run([Segment(0, 31, 0.05)], spec).sprt_accepts


def test_log_e_table_matches_scalar_run():
    spec = CountSpec(alpha=0.05, beta=0.2, effect=2, k0=10, sprt_weight=0.3)
    table = error_label.log_e_table(40, 0.1, spec)
    for s, f in [(0, 0), (3, 10), (12, 5), (0, 40)]:
        assert table[s, f] == pytest.approx(error_label.run([Segment(s, s + f, 0.1)], spec).log_e)


def test_clopper_pearson_upper_bound():
    assert rate_upper_bound(0, 100, 0.05) == pytest.approx(1 - 0.05 ** (1 / 100))
    assert rate_upper_bound(0, 0, 0.05) == 1.0
    with pytest.raises(ValueError):
        rate_upper_bound(5, 3, 0.05)


def test_one_sided_mixture_stays_small_when_its_tail_underflows():
    # Zero candidate events among many at a 50 % share: the posterior mass above rho
    # underflows double precision near 1,000 events; the Bayes factor must keep falling
    # (a floored tail once made it jump to e^6 and blame an error-free candidate).
    logs = [beta_mixture.log_bayes_factor(0, n, 0.5, 10.0) for n in (500, 900, 1041, 5000, 100000)]
    assert all(later < earlier for earlier, later in zip(logs, logs[1:]))
    assert logs[-1] < -10


def test_log_tail_continued_fraction_matches_scipy_where_both_work():
    a, b = np.array([5.0, 7.5, 20.0]), np.array([105.0, 300.0, 800.0])
    direct = np.log(betaincc(a, b, 0.3))
    in_logs = (b * np.log1p(-0.3) + a * np.log(0.3) - betaln(b, a) - np.log(b)
               + np.log(beta_mixture._incomplete_beta_fraction(b, a, 0.7)))
    assert in_logs == pytest.approx(direct, rel=1e-10)
