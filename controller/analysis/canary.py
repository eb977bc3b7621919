"""The canary judge: guard, sample ratio, SLOs, then the count tests on errors and latency."""
from __future__ import annotations

from typing import Any

from controller.analysis import error_label, guards, slo, srm
from controller.analysis.bounds import rate_upper_bound
from controller.analysis.metrics import ERRORS, CountMetric, canary_metrics
from controller.analysis.types import Decision, Verdict, Window
from controller.analysis.units import by_unit
from policies.analysis import AnalysisPolicy

# Each metric's settings and test result, by metric name.
Results = dict[str, tuple[CountMetric, error_label.CountResult]]


def judge_canary(windows: list[Window], cfg: AnalysisPolicy, healthy: bool = True) -> Verdict:
    """`healthy` False (the environment is unwell) keeps the hard guard silent; the analyzer
    turns what would advance into a hold."""
    canary = [w for w in windows if w.canary_share > 0]
    if not canary or canary[-1] is not windows[-1]:
        return Verdict(Decision.INCONCLUSIVE, "the current window has no canary share")
    cur = canary[-1]
    units = by_unit(canary, cfg.unit)
    base: dict[str, Any] = {"phase": "canary", "unit": cfg.unit, "canary_share": cur.canary_share,
            "elapsed_seconds": round(cur.elapsed_seconds, 3), "counts": _counts(cur)}
    reason = guards.canary_guard(units[-1].stable, units[-1].candidate, cur.canary_share, cfg.max_error_rate,
                                 cfg.guard_min_requests, cfg.guard_alpha) if healthy else None
    if reason:
        return Verdict(Decision.ROLLBACK, reason, base)
    ratio = srm.check(units, cfg.srm_alpha, cfg.srm_k0)
    base["srm"] = ratio.evidence()
    if ratio.mismatch:
        return Verdict(Decision.PAUSE, f"sample-ratio mismatch: candidate got {ratio.observed_share:.2%} "
                                       f"of {cfg.unit}s, intended {ratio.intended_share:.2%}", base)
    objectives = slo.judge(canary, cfg)
    if objectives:
        base["slo"] = {r.key: r.evidence() for r in objectives}
    broken = slo.breach(objectives)
    if broken:
        return Verdict(Decision.ROLLBACK, f"SLO broken: {broken.evidence()['objective']}; candidate "
                                          f"{broken.candidate_over} of {broken.candidate_requests} requests over, "
                                          f"stable {broken.stable_over} of {broken.stable_requests}", base)
    results: Results = {m.name: (m, error_label.run(list(m.segments), m.spec, m.threshold))
               for m in canary_metrics(canary, cfg, error_windows=units if units is not canary else None)}
    base["metrics"] = {name: _metric_evidence(m, r) for name, (m, r) in results.items()}
    return _decide(results, units[-1], cfg, base)


def _decide(results: Results, cur: Window, cfg: AnalysisPolicy, evidence: dict[str, Any]) -> Verdict:
    rejected = [(r.log_e, name) for name, (_, r) in results.items() if r.rejected]
    if rejected:
        _, name = max(rejected)
        m, r = results[name]
        step = "first canary step" if len(m.segments) == 1 else "after the first step"
        return Verdict(Decision.ROLLBACK, f"{name} regression: e-value {r.evidence()['e_value']:.4g} "
                                          f">= {r.threshold:.4g} (alpha {m.spec.alpha:.4g}, {step})", evidence)
    waiting = _promotion_gaps(results, cur, cfg)
    if not waiting:
        return Verdict(Decision.PROMOTE, "no regression: "
                       + ", ".join(n for n, (m, r) in results.items() if _accepts(m, r)) + " accepted", evidence)
    if cur.elapsed_seconds > cfg.max_window_seconds:
        return Verdict(Decision.PAUSE, f"no decision after {cur.elapsed_seconds:.0f} s: " + "; ".join(waiting),
                       evidence)
    return Verdict(Decision.CONTINUE, "; ".join(waiting), evidence)


def _promotion_gaps(results: Results, cur: Window, cfg: AnalysisPolicy) -> list[str]:
    gaps = []
    if cur.candidate.requests < cfg.min_requests:
        gaps.append(f"{cur.candidate.requests} of {cfg.min_requests} candidate {cfg.unit}s")
    if cur.elapsed_seconds < cfg.min_soak_seconds:
        gaps.append(f"soaked {cur.elapsed_seconds:.0f} of {cfg.min_soak_seconds:.0f} s")
    for name, (m, r) in results.items():
        needed = name == ERRORS or cfg.require_latency_acceptance
        if needed and not _accepts(m, r):
            gaps.append(f"{name}: no regression not yet accepted")
    return gaps


def _accepts(m: CountMetric, r: error_label.CountResult) -> bool:
    """Wald's boundary, or a candidate rate confidently below the tolerance (rare events)."""
    if r.sprt_accepts:
        return True
    return m.tolerance > 0 and rate_upper_bound(m.candidate_events, m.candidate_requests, m.spec.alpha) <= m.tolerance


def _metric_evidence(m: CountMetric, r: error_label.CountResult) -> dict[str, Any]:
    cur = m.segments[-1]
    return {**r.evidence(), "alpha": round(m.spec.alpha, 6), "effect": round(m.spec.effect, 4),
            "candidate_events": cur.s, "events": cur.n, "accepted": _accepts(m, r)}


def _counts(w: Window) -> dict[str, Any]:
    return {track: {"requests": t.requests, "errors": t.errors, "errors_by_class": dict(t.errors_by_class),
                    "latency_over": dict(t.latency_over), "overload": t.overload, "sessions": t.sessions,
                    "sessions_failed": t.sessions_failed}
            for track, t in (("stable", w.stable), ("candidate", w.candidate))}
