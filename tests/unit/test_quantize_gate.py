"""The quality gate: perplexity on its limit, accuracy on the paired exact bounds, the
inconclusive rule, with the figures in the reason."""
from __future__ import annotations

import math
from dataclasses import fields

import pytest

from policies.schema import QualityGate
from quantize.gate import check_gate
from quantize.report import QualityReport


def report(ppl_parent: float = 10.0, ppl_build: float = 10.2, *, items: int = 6000, lost: int | None = 60,
           gained: int | None = 60, parent_right: int = 1800) -> QualityReport:
    acc_parent = parent_right / items
    acc_build = (parent_right - (lost or 0) + (gained or 0)) / items
    return QualityReport(
        parent_perplexity=ppl_parent, build_perplexity=ppl_build,
        perplexity_increase_pct=(ppl_build - ppl_parent) / ppl_parent * 100,
        parent_accuracy=acc_parent, build_accuracy=acc_build, accuracy_drop_pct=(acc_parent - acc_build) * 100,
        eval_items=items, heldout_tokens=1000, parent_layers_bytes_fp16=4000, build_layers_bytes=1040,
        weight_size_ratio=0.26, parent_only_correct=lost, build_only_correct=gained, suite="builtin:large",
    )


def test_no_change_on_many_items_passes_with_figures() -> None:
    ok, reason = check_gate(report(), QualityGate())
    assert ok, reason
    assert reason.startswith("quality gate passed: ") and "+2.00%" in reason and "limit 5%" in reason
    assert "drop +0.00 points, limit 1.2; 95% bounds [-0.41, +0.41] on 6000 items of builtin:large" in reason
    assert "60 answers lost, 60 gained" in reason


def test_perplexity_over_limit_fails() -> None:
    ok, reason = check_gate(report(ppl_build=11.0), QualityGate(max_perplexity_increase_pct=5))
    assert not ok
    assert "perplexity increase over limit" in reason and "+10.00%" in reason


def test_clear_accuracy_loss_fails() -> None:
    ok, reason = check_gate(report(lost=300, gained=100), QualityGate())   # 3.33 points
    assert not ok
    assert "(accuracy drop over limit)" in reason and "drop +3.33 points" in reason


def test_point_estimate_over_the_limit_with_few_items_is_inconclusive_and_fails_by_default() -> None:
    ok, reason = check_gate(report(items=121, lost=3, gained=0, parent_right=20), QualityGate())
    assert not ok
    assert "not enough evidence: 121 items, CI [" in reason and "contains the limit 1.2" in reason


def test_small_set_that_looks_perfect_is_still_inconclusive() -> None:
    ok, reason = check_gate(report(items=121, lost=0, gained=0, parent_right=20), QualityGate())
    assert not ok and "CI [-3.73, +3.73]" in reason


def test_policy_may_pass_inconclusive_results_and_says_so() -> None:
    ok, reason = check_gate(report(items=121, lost=1, gained=0, parent_right=20),
                            QualityGate(on_inconclusive="pass"))
    assert ok and "not enough evidence" in reason and "policy passes inconclusive results" in reason


def test_inconclusive_never_rescues_a_conclusive_failure() -> None:
    ok, _ = check_gate(report(lost=300, gained=100), QualityGate(on_inconclusive="pass"))
    assert not ok


def test_higher_confidence_needs_more_evidence() -> None:
    r = report(lost=140, gained=100)   # drop 0.67 points
    assert check_gate(r, QualityGate(confidence=0.9))[0]
    assert not check_gate(r, QualityGate(confidence=0.9999))[0]


def test_report_without_paired_counts_is_inconclusive() -> None:
    ok, reason = check_gate(report(lost=None, gained=None), QualityGate())
    assert not ok and "no paired counts" in reason


def test_counts_read_back_from_tags_as_floats_work() -> None:
    # the controller rebuilds the report from a dict of known fields (MLflow tags are floats)
    doc = {k: (float(v) if isinstance(v, int) else v) for k, v in report().to_dict().items()}
    known = {f.name for f in fields(QualityReport)}
    ok, reason = check_gate(QualityReport(**{k: v for k, v in doc.items() if k in known}), QualityGate())
    assert ok and "6000 items" in reason


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_figures_fail(bad: float) -> None:
    ok, reason = check_gate(report(ppl_build=bad), QualityGate(max_perplexity_increase_pct=1e9))
    assert not ok
    assert "not finite" in reason


def test_report_tags_are_strings() -> None:
    tags = report().as_tags()
    assert tags["relctl.quality.perplexity_increase_pct"] == "2"
    assert tags["relctl.quality.parent_only_correct"] == "60"
    assert all(isinstance(v, str) for v in tags.values())
    assert "relctl.quality.quantization_seconds" not in tags  # None values are left out


def test_the_demo_runs_the_default_gate_on_a_suite_that_decides_its_build() -> None:
    """policies/demo.yaml: the default limit, confidence and inconclusive rule, on builtin:medium. Its
    served build's measured counts there (5 answers lost, 0 gained of 2,000) pass with room; the same
    counts on the 121 questions would be inconclusive and fail."""
    from policies.loader import load_policy
    demo, default = load_policy("demo").quality, QualityGate()
    assert demo.suite == "builtin:medium"
    assert (demo.max_accuracy_drop_pct, demo.confidence, demo.on_inconclusive) == (
        default.max_accuracy_drop_pct, default.confidence, default.on_inconclusive) == (1.2, 0.95, "fail")
    ok, reason = check_gate(report(items=2000, lost=5, gained=0, parent_right=1754), demo)
    assert ok and "drop +0.25 points, limit 1.2; 95% bounds [+0.00, +0.65] on 2000 items" in reason
    ok, reason = check_gate(report(items=121, lost=5, gained=0, parent_right=90), demo)
    assert not ok and "not enough evidence: 121 items" in reason
