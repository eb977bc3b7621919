"""The quality gate passes and fails on the policy's limits, with the figures in the reason."""
from __future__ import annotations

import math

import pytest

from policies.schema import QualityGate
from quantize.gate import check_gate
from quantize.report import QualityReport


def report(ppl_parent: float = 10.0, ppl_build: float = 10.2, acc_parent: float = 0.5,
           acc_build: float = 0.5) -> QualityReport:
    return QualityReport(
        parent_perplexity=ppl_parent, build_perplexity=ppl_build,
        perplexity_increase_pct=(ppl_build - ppl_parent) / ppl_parent * 100,
        parent_accuracy=acc_parent, build_accuracy=acc_build, accuracy_drop_pct=(acc_parent - acc_build) * 100,
        eval_items=100, heldout_tokens=1000, parent_layers_bytes_fp16=4000, build_layers_bytes=1040,
        weight_size_ratio=0.26,
    )


def test_within_limits_passes_with_figures() -> None:
    ok, reason = check_gate(report(), QualityGate())
    assert ok
    assert "passed" in reason and "+2.00%" in reason and "limit 5%" in reason


def test_perplexity_over_limit_fails() -> None:
    ok, reason = check_gate(report(ppl_build=11.0), QualityGate(max_perplexity_increase_pct=5))
    assert not ok
    assert "perplexity increase over limit" in reason and "+10.00%" in reason


def test_accuracy_drop_over_default_limit_fails() -> None:
    ok, reason = check_gate(report(acc_build=0.48), QualityGate())  # 2 points > 1.2
    assert not ok
    assert "accuracy drop over limit" in reason and "drop +2.00 points, limit 1.2" in reason


def test_accuracy_drop_at_limit_passes() -> None:
    ok, _ = check_gate(report(acc_parent=0.5, acc_build=0.5 - 0.012), QualityGate(max_accuracy_drop_pct=1.3))
    assert ok


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_figures_fail(bad: float) -> None:
    ok, reason = check_gate(report(ppl_build=bad), QualityGate(max_perplexity_increase_pct=1e9))
    assert not ok
    assert "not finite" in reason


def test_report_tags_are_strings() -> None:
    tags = report().as_tags()
    assert tags["relctl.quality.perplexity_increase_pct"] == "2"
    assert all(isinstance(v, str) for v in tags.values())
    assert "relctl.quality.quantization_seconds" not in tags  # None values are left out
