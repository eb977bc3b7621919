"""Turn a release's measurement windows into a verdict.

This is the entry point the reconcile loop calls at every tick. It stays pure:
windows in, verdict out. The statistics live in small modules: sprt, beta_mixture,
error_label (the count test), srm, latency, slo, guards, units; canary and shadow compose them.
"""
from __future__ import annotations

from controller.analysis.canary import judge_canary
from controller.analysis.shadow import judge_shadow
from controller.analysis.types import Decision, Verdict, Window
from policies.analysis import AnalysisPolicy

PHASES = ("shadow", "canary")


def evaluate(windows: list[Window], cfg: AnalysisPolicy, *, phase: str, healthy: bool = True) -> Verdict:
    """`phase` is "shadow" or "canary"; windows are oldest first, the last is current.
    `healthy` False (health.py: the stable itself is unwell) silences the hard guards."""
    if phase not in PHASES:
        raise ValueError(f"unknown analysis phase {phase!r}; expected one of {', '.join(PHASES)}")
    if not windows:
        return Verdict(Decision.INCONCLUSIVE, "no measurements yet")
    if phase == "shadow":
        return judge_shadow(windows, cfg, healthy)
    return judge_canary(windows, cfg, healthy)
