"""The quality gate: a build that loses more than the policy allows is not shipped.

Accuracy is decided on the paired answers (quantize/paired.py): the build passes only when
the exact upper bound of its accuracy drop is under `max_accuracy_drop_pct` at the policy's
`confidence`, fails when the lower bound reaches it, and is otherwise inconclusive — which
fails by default (`on_inconclusive`), saying how many items and what interval it had.
"""
from __future__ import annotations

import math
from typing import Any

from quantize.paired import PairedDrop, decision, paired_drop
from quantize.report import QualityReport


def paired_from_report(report: QualityReport, confidence: float) -> PairedDrop | None:
    """The paired drop, or None for a report without paired counts (measured before pairing)."""
    if report.parent_only_correct is None or report.build_only_correct is None:
        return None
    return paired_drop(int(report.eval_items), int(report.parent_only_correct),
                       int(report.build_only_correct), confidence)


def _of(suite: str) -> str:
    return f" of {suite}" if suite else ""


def _accuracy_figures(report: QualityReport, drop: PairedDrop | None, limit: float) -> str:
    head = f"accuracy {report.parent_accuracy:.1%} -> {report.build_accuracy:.1%}"
    if drop is None:
        return f"{head} (drop {report.accuracy_drop_pct:+.2f} points, limit {limit:g}; no paired counts)"
    return (f"{head} (drop {drop.drop_pct:+.2f} points, limit {limit:g}; {drop.confidence:.0%} bounds "
            f"[{drop.ci_low_pct:+.2f}, {drop.ci_high_pct:+.2f}] on {drop.items} items{_of(report.suite)}: "
            f"{drop.parent_only} answers lost, {drop.build_only} gained)")


def _accuracy_verdict(drop: PairedDrop | None, quality: Any) -> tuple[str | None, str | None]:
    """(failure, note): failure names why the accuracy part fails; note marks a passed inconclusive."""
    verdict = "inconclusive" if drop is None else decision(drop, quality.max_accuracy_drop_pct)
    if verdict == "pass":
        return None, None
    if verdict == "fail":
        return "accuracy drop over limit", None
    evidence = ("not enough evidence: the report has no paired counts" if drop is None else
                f"not enough evidence: {drop.items} items, CI [{drop.ci_low_pct:+.2f}, {drop.ci_high_pct:+.2f}] "
                f"contains the limit {quality.max_accuracy_drop_pct:g}")
    if quality.on_inconclusive == "pass":
        return None, f"{evidence} (policy passes inconclusive results)"
    return evidence, None


def check_gate(report: QualityReport, quality: Any) -> tuple[bool, str]:
    """quality is policies.schema.QualityGate; returns (ok, reason) with the figures in the reason."""
    ppl, max_ppl = report.perplexity_increase_pct, quality.max_perplexity_increase_pct
    drop = paired_from_report(report, quality.confidence) if math.isfinite(report.accuracy_drop_pct) else None
    figures = (f"perplexity {report.parent_perplexity:.4g} -> {report.build_perplexity:.4g} "
               f"({ppl:+.2f}%, limit {max_ppl:g}%); "
               f"{_accuracy_figures(report, drop, quality.max_accuracy_drop_pct)}")
    if not all(math.isfinite(v) for v in (report.build_perplexity, ppl, report.accuracy_drop_pct)):
        return False, f"quality gate failed: figures are not finite: {figures}"
    failures = ["perplexity increase over limit"] if ppl > max_ppl else []
    failure, note = _accuracy_verdict(drop, quality)
    failures += [failure] if failure else []
    if failures:
        return False, f"quality gate failed ({'; '.join(failures)}): {figures}"
    return True, f"quality gate passed{' (' + note + ')' if note else ''}: {figures}"
