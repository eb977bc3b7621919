"""Drift of the live champion: baselines from the quality report or the first run, drops in points."""
from __future__ import annotations

import pytest

from controller.scheduler.drift import SuiteFigures, baselines, compare

REPORT = {"relctl.quality.suite": "builtin:small", "relctl.quality.build_accuracy": "0.8"}


@pytest.mark.parametrize("base, now, limits, drifted, reasons", [
    # accuracy 80 % -> 78 % is a 2-point drop: at the limit is no drift, past it is
    ({"accuracy": 0.80, "compliance": 1.0}, (0.78, 1.0), (2.0, 2.0), False, []),
    ({"accuracy": 0.80, "compliance": 1.0}, (0.77, 1.0), (2.0, 2.0), True, ["accuracy 80.0% -> 77.0%"]),
    ({"accuracy": 0.80, "compliance": 1.0}, (0.80, 0.95), (2.0, 2.0), True, ["compliance 100.0% -> 95.0%"]),
    ({"accuracy": 0.80, "compliance": 1.0}, (0.5, 0.5), (50.0, 50.0), False, []),
    ({"accuracy": 0.80}, (0.80, 0.0), (2.0, 2.0), False, []),          # no compliance baseline: not compared
    ({}, (0.0, 0.0), (2.0, 2.0), False, []),                              # no baseline at all: no drift
    ({"accuracy": 0.5, "compliance": 0.5}, (0.9, 0.9), (0.0, 0.0), False, []),   # better is never drift
])
def test_drift_when_a_drop_passes_the_limit(base, now, limits, drifted, reasons):
    out = compare({"s": SuiteFigures(100, *now)}, {"s": base}, *limits)
    assert out["drifted"] is drifted
    assert len(out["reasons"]) == len(reasons)
    for got, want in zip(out["reasons"], reasons):
        assert got.startswith("s: " + want)


def test_drop_is_in_points():
    out = compare({"s": SuiteFigures(100, 0.75, 0.9)}, {"s": {"accuracy": 0.8, "compliance": 1.0}}, 1, 1)
    assert out["suites"]["s"]["accuracy_drop_pct"] == pytest.approx(5.0)
    assert out["suites"]["s"]["compliance_drop_pct"] == pytest.approx(10.0)


def test_baseline_from_the_quality_report_of_the_same_suite_only():
    assert baselines(REPORT, ["builtin:small"], None) == {
        "builtin:small": {"accuracy": 0.8, "source": "quality report"}}
    assert baselines(REPORT, ["other.jsonl"], None) == {}


def test_first_run_fills_what_the_report_lacks():
    first = {"builtin:small": {"accuracy": 0.9, "compliance": 0.97}, "other.jsonl": {"accuracy": 0.6, "compliance": 1}}
    got = baselines(REPORT, ["builtin:small", "other.jsonl"], first, "ev-1")
    assert got["builtin:small"] == {"accuracy": 0.8, "compliance": 0.97, "source": "quality report"}
    assert got["other.jsonl"] == {"accuracy": 0.6, "compliance": 1, "source": "evaluation ev-1"}
