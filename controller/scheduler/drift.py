"""Has the live champion drifted? Its figures now against its figures at promotion.

The baseline of a suite is, in order: the build's quality report on the version
(`relctl.quality.build_accuracy`, and `relctl.quality.compliance` when present) when that
report was measured on the same suite (`relctl.quality.suite`); otherwise the version's first
finished scheduled or manual evaluation (the figures just after promotion). A drop is in
percentage points; it drifts when it is larger than the policy's limit.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

QUALITY_SUITE = "relctl.quality.suite"
QUALITY_ACCURACY = "relctl.quality.build_accuracy"
QUALITY_COMPLIANCE = "relctl.quality.compliance"


@dataclass(frozen=True)
class SuiteFigures:
    items: int
    accuracy: float          # share of items answered right
    compliance: float        # share of answers that pass the policy's output validators
    errors: int = 0          # items the gateway answered with an error

    def to_json(self) -> dict[str, Any]:
        return {"items": self.items, "accuracy": self.accuracy, "compliance": self.compliance,
                "errors": self.errors}


def baseline_from_tags(tags: Mapping[str, str], suite: str) -> dict[str, Any] | None:
    """The build's figures at promotion for this suite, or None when the report measured another suite."""
    if tags.get(QUALITY_SUITE) != suite or QUALITY_ACCURACY not in tags:
        return None
    base: dict[str, Any] = {"accuracy": float(tags[QUALITY_ACCURACY]), "source": "quality report"}
    if QUALITY_COMPLIANCE in tags:
        base["compliance"] = float(tags[QUALITY_COMPLIANCE])
    return base


def baselines(tags: Mapping[str, str], suites: list[str], first_run: Mapping[str, Any] | None,
              first_run_id: str = "") -> dict[str, dict[str, Any]]:
    """Per suite the figures to compare with; a suite with neither a report nor a first run has none."""
    out: dict[str, dict[str, Any]] = {}
    for suite in suites:
        from_run = (first_run or {}).get(suite)
        base = baseline_from_tags(tags, suite) or {}
        if from_run:
            # A report without compliance takes it from the first run; a suite without a report takes both.
            base = {"accuracy": from_run["accuracy"], "compliance": from_run["compliance"],
                    "source": f"evaluation {first_run_id}", **base}
        if base:
            out[suite] = base
    return out


def _drop_pct(base: float | None, now: float) -> float | None:
    return None if base is None else round((base - now) * 100.0, 4)


def compare(figures: Mapping[str, SuiteFigures], base: Mapping[str, Mapping[str, Any]],
            max_accuracy_drop_pct: float, max_compliance_drop_pct: float) -> dict[str, Any]:
    """{"drifted": bool, "reasons": [...], "suites": {suite: drops and baseline}}; no baseline, no drift."""
    reasons: list[str] = []
    suites: dict[str, Any] = {}
    for suite, now in figures.items():
        b = base.get(suite) or {}
        acc, comp = _drop_pct(b.get("accuracy"), now.accuracy), _drop_pct(b.get("compliance"), now.compliance)
        suites[suite] = {"accuracy_drop_pct": acc, "compliance_drop_pct": comp, "baseline": dict(b)}
        if acc is not None and acc > max_accuracy_drop_pct:
            reasons.append(f"{suite}: accuracy {b['accuracy']:.1%} -> {now.accuracy:.1%} "
                           f"(drop {acc:.2f} points > limit {max_accuracy_drop_pct:g}; {now.items} items)")
        if comp is not None and comp > max_compliance_drop_pct:
            reasons.append(f"{suite}: compliance {b['compliance']:.1%} -> {now.compliance:.1%} "
                           f"(drop {comp:.2f} points > limit {max_compliance_drop_pct:g})")
    return {"drifted": bool(reasons), "reasons": reasons, "suites": suites}
