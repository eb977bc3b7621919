"""The quality gate: a build that loses more than the policy allows is not shipped."""
from __future__ import annotations

import math
from typing import Any

from quantize.report import QualityReport


def check_gate(report: QualityReport, quality: Any) -> tuple[bool, str]:
    """quality is policies.schema.QualityGate; returns (ok, reason) with the figures in the reason."""
    ppl, acc = report.perplexity_increase_pct, report.accuracy_drop_pct
    max_ppl, max_acc = quality.max_perplexity_increase_pct, quality.max_accuracy_drop_pct
    figures = (f"perplexity {report.parent_perplexity:.4g} -> {report.build_perplexity:.4g} "
               f"({ppl:+.2f}%, limit {max_ppl:g}%); accuracy {report.parent_accuracy:.1%} -> "
               f"{report.build_accuracy:.1%} (drop {acc:+.2f} points, limit {max_acc:g})")
    if not all(math.isfinite(v) for v in (report.build_perplexity, ppl, acc)):
        return False, f"quality gate failed: figures are not finite: {figures}"
    failures = []
    if ppl > max_ppl:
        failures.append("perplexity increase over limit")
    if acc > max_acc:
        failures.append("accuracy drop over limit")
    if failures:
        return False, f"quality gate failed ({'; '.join(failures)}): {figures}"
    return True, f"quality gate passed: {figures}"
