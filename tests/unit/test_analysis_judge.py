"""The pure judge: windows in, verdict out."""
import json
import math

import pytest

from controller.analysis.judge import evaluate
from controller.analysis.types import Decision, ShadowCounts, TrackCounts, Window
from policies.analysis import AnalysisPolicy

CFG = AnalysisPolicy()


def canary(stable_req, stable_err, cand_req, cand_err, share=0.05, elapsed=60.0, **over):
    return Window(share, elapsed, TrackCounts(stable_req, stable_err, latency_over=over.get("s_over", {})),
                  TrackCounts(cand_req, cand_err, latency_over=over.get("c_over", {})))


def test_no_windows_is_inconclusive():
    assert evaluate([], CFG, phase="canary").decision == Decision.INCONCLUSIVE


def test_unknown_phase_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown analysis phase 'blue'"):
        evaluate([canary(100, 1, 5, 0)], CFG, phase="blue")


def test_five_fold_error_rate_rolls_back_with_evidence():
    v = evaluate([canary(5700, 57, 300, 15)], CFG, phase="canary")
    assert v.decision == Decision.ROLLBACK
    assert v.reason.startswith("errors regression")
    assert v.evidence["metrics"]["errors"]["rejected"] is True
    json.dumps(v.evidence)          # stored as a release event


def test_first_step_rolls_back_below_one_over_alpha_later_steps_above():
    # e-value 18.3: past the first step's exactly calibrated threshold (14.1), short of 1/alpha = 20.
    first = evaluate([canary(5700, 55, 300, 9)], CFG, phase="canary")
    assert first.decision == Decision.ROLLBACK
    assert "18.28 >= 14.08 (alpha 0.05, first canary step)" in first.reason
    assert first.evidence["metrics"]["errors"]["threshold"] == pytest.approx(14.079, abs=1e-3)
    # The same evidence in a later step (the first one saw nothing) meets the higher threshold.
    later = evaluate([canary(1000, 0, 50, 0), canary(5700, 55, 300, 9)], CFG, phase="canary")
    assert later.decision == Decision.CONTINUE
    assert later.evidence["metrics"]["errors"]["threshold"] == pytest.approx(24.93, abs=1e-2)
    ville = AnalysisPolicy(later_step_threshold_factor=1)
    assert evaluate([canary(5700, 55, 300, 9)], ville, phase="canary").decision == Decision.CONTINUE


def test_healthy_canary_with_few_errors_continues_then_promotes():
    early = evaluate([canary(5700, 57, 300, 3)], CFG, phase="canary")
    assert early.decision == Decision.CONTINUE and "not yet accepted" in early.reason
    late = evaluate([canary(15200, 152, 800, 8, elapsed=160)], CFG, phase="canary")
    assert late.decision == Decision.PROMOTE


def test_promotion_waits_for_soak_and_samples():
    cfg = AnalysisPolicy(min_soak_seconds=120, min_requests=1000)
    v = evaluate([canary(15200, 152, 800, 8, elapsed=60)], cfg, phase="canary")
    assert v.decision == Decision.CONTINUE
    assert "800 of 1000 candidate requests" in v.reason and "soaked 60 of 120 s" in v.reason


def test_error_free_canary_promotes_through_the_tolerance():
    v = evaluate([canary(3000, 0, 200, 0, elapsed=40)], CFG, phase="canary")
    assert v.decision == Decision.PROMOTE
    strict = AnalysisPolicy(error_rate_tolerance=0)
    assert evaluate([canary(3000, 0, 200, 0, elapsed=40)], strict, phase="canary").decision == Decision.CONTINUE


def test_hard_guard_rolls_back_at_once():
    v = evaluate([canary(380, 4, 20, 6, elapsed=4)], CFG, phase="canary")
    assert v.decision == Decision.ROLLBACK and v.reason.startswith("hard guard")


def test_hard_guard_spares_candidate_in_a_shared_outage():
    v = evaluate([canary(380, 190, 20, 6, elapsed=4)], CFG, phase="canary")
    assert v.decision != Decision.ROLLBACK


def test_sample_ratio_mismatch_pauses():
    v = evaluate([canary(9000, 0, 1000, 0)], CFG, phase="canary")    # 10 % served, 5 % intended
    assert v.decision == Decision.PAUSE and "sample-ratio mismatch" in v.reason
    assert v.evidence["srm"]["observed_share"] == pytest.approx(0.1)


def test_latency_exceedances_roll_back():
    # stable: 1 % over its p99; candidate: 10 % over it
    w = canary(5700, 0, 300, 0, s_over={"e2e_p99": 57}, c_over={"e2e_p99": 30})
    v = evaluate([w], CFG, phase="canary")
    assert v.decision == Decision.ROLLBACK and v.reason.startswith("e2e_p99 regression")
    assert v.evidence["metrics"]["e2e_p99"]["alpha"] == pytest.approx(CFG.alpha * (1 - CFG.error_alpha_share))
    assert v.evidence["metrics"]["errors"]["alpha"] == pytest.approx(CFG.alpha * CFG.error_alpha_share)


def test_alpha_is_split_across_latency_metrics():
    over = {"e2e_p50": 0, "e2e_p99": 0, "ttft_p99": 0}
    v = evaluate([canary(1000, 0, 50, 0, s_over=over, c_over=over)], CFG, phase="canary")
    per = CFG.alpha * (1 - CFG.error_alpha_share) / 3
    assert {k: m["alpha"] for k, m in v.evidence["metrics"].items()} == pytest.approx(
        {"errors": CFG.alpha * CFG.error_alpha_share, "e2e_p50": per, "e2e_p99": per, "ttft_p99": per}, rel=1e-4)


def test_evidence_accumulates_across_canary_steps():
    step1 = canary(5700, 57, 300, 7, elapsed=60)
    step2 = canary(4500, 45, 1500, 38, share=0.25, elapsed=20)
    alone = evaluate([step2], CFG, phase="canary").evidence["metrics"]["errors"]["log_e"]
    both = evaluate([step1, step2], CFG, phase="canary")
    assert both.evidence["metrics"]["errors"]["log_e"] > alone


def test_canary_ignores_shadow_windows_for_counts():
    shadow = Window(0.0, 30, TrackCounts(3000, 30), TrackCounts(), ShadowCounts(3000, 2, 1))
    v = evaluate([shadow, canary(5700, 57, 300, 15)], CFG, phase="canary")
    assert v.decision == Decision.ROLLBACK


def test_canary_phase_with_a_shadow_window_current_is_inconclusive():
    shadow = Window(0.0, 30, TrackCounts(3000, 30), TrackCounts(), ShadowCounts(3000, 2, 1))
    assert evaluate([shadow], CFG, phase="canary").decision == Decision.INCONCLUSIVE


def test_no_decision_for_too_long_pauses():
    cfg = AnalysisPolicy(max_window_seconds=100, error_rate_tolerance=0)
    v = evaluate([canary(5700, 0, 300, 0, elapsed=101)], cfg, phase="canary")
    assert v.decision == Decision.PAUSE and "no decision after 101 s" in v.reason


def shadow_window(pairs, only_cand, only_stable, elapsed=30.0):
    return Window(0.0, elapsed, TrackCounts(pairs, 0), TrackCounts(), ShadowCounts(pairs, only_cand, only_stable))


def test_shadow_exact_e_value():
    # 2 candidate-only failures, 1 stable-only, at share 1/2. Likelihood ratios: 2x -> (4/3)^2 (2/3) = 32/27,
    # 5x (2.5 times the minimum effect) -> (5/3)^2 (1/3) = 25/27; Beta(1, 1) mixture above 1/2 -> 11/12.
    cfg = AnalysisPolicy(mixture_k0=2, min_effect=2, sprt_weight=0.5, large_effect_factor=2.5,
                         large_effect_weight=0.25)
    v = evaluate([shadow_window(100, 2, 1)], cfg, phase="shadow")
    expected = 32 / 27 / 2 + 25 / 27 / 4 + 11 / 12 / 4
    assert math.exp(v.evidence["test"]["log_e"]) == pytest.approx(expected, rel=1e-4)
    assert v.decision == Decision.CONTINUE
    two_parts = AnalysisPolicy(mixture_k0=2, min_effect=2, sprt_weight=0.5, large_effect_weight=0)
    v = evaluate([shadow_window(100, 2, 1)], two_parts, phase="shadow")
    assert math.exp(v.evidence["test"]["log_e"]) == pytest.approx((32 / 27 + 11 / 12) / 2, rel=1e-4)


def test_shadow_catches_a_bad_candidate_with_zero_users_hurt():
    v = evaluate([shadow_window(1000, 25, 3)], CFG, phase="shadow")
    assert v.decision == Decision.ROLLBACK and v.reason.startswith("shadow pairs")


def test_shadow_accepts_a_clean_candidate():
    v = evaluate([shadow_window(2000, 1, 2)], CFG, phase="shadow")
    assert v.decision == Decision.PROMOTE


def test_shadow_guard():
    v = evaluate([shadow_window(30, 15, 0, elapsed=2)], CFG, phase="shadow")
    assert v.decision == Decision.ROLLBACK and v.reason.startswith("hard guard")


def test_guards_need_a_valid_comparison_not_a_rate():
    # 30 % candidate errors, 25 % stable errors at a 5 % share: over the rate, but the
    # candidate's share of errors (6 of 101) is its traffic share -- no guard.
    v = evaluate([canary(380, 95, 20, 6, elapsed=4)], CFG, phase="canary")
    assert not v.reason.startswith("hard guard")
    assert evaluate([shadow_window(40, 10, 8, elapsed=2)], CFG, phase="shadow").decision != Decision.ROLLBACK


def test_an_unhealthy_environment_silences_the_guard():
    v = evaluate([canary(380, 4, 20, 6, elapsed=4)], CFG, phase="canary", healthy=False)
    assert not v.reason.startswith("hard guard")
