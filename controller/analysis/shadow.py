"""The paired shadow judge: mirrored requests, judged on discordant pairs only.

Under "no regression", a pair where exactly one side failed is the candidate's failure
with probability 1/2, so the count test runs with ρ = 1/2. No user sees a shadow answer:
a bad candidate caught here costs zero bad answers.
"""
from __future__ import annotations

from typing import Any

from controller.analysis import error_label, guards
from controller.analysis.bounds import rate_upper_bound
from controller.analysis.error_label import Segment
from controller.analysis.metrics import count_spec
from controller.analysis.types import Decision, Verdict, Window
from policies.analysis import AnalysisPolicy

PAIRED_SHARE = 0.5


def judge_shadow(windows: list[Window], cfg: AnalysisPolicy, healthy: bool = True) -> Verdict:
    shadow = [w for w in windows if w.canary_share == 0]
    if not shadow or shadow[-1] is not windows[-1]:
        return Verdict(Decision.INCONCLUSIVE, "the current window is not a shadow window")
    cur = shadow[-1].shadow
    evidence: dict[str, Any] = {"phase": "shadow", "elapsed_seconds": round(shadow[-1].elapsed_seconds, 3),
                "pairs": cur.pairs, "only_candidate_failed": cur.only_candidate_failed,
                "only_stable_failed": cur.only_stable_failed}
    reason = guards.shadow_guard(cur, cfg.max_error_rate, cfg.guard_min_requests,
                                 cfg.guard_alpha) if healthy else None
    if reason:
        return Verdict(Decision.ROLLBACK, reason, evidence)
    spec = count_spec(cfg, cfg.shadow_alpha, cfg.min_effect)
    segments = [Segment(w.shadow.only_candidate_failed,
                        w.shadow.only_candidate_failed + w.shadow.only_stable_failed, PAIRED_SHARE) for w in shadow]
    result = error_label.run(segments, spec)
    evidence["test"] = result.evidence()
    if result.rejected:
        return Verdict(Decision.ROLLBACK, f"shadow pairs: the candidate alone failed {cur.only_candidate_failed} "
                                          f"times vs {cur.only_stable_failed} for stable (e-value "
                                          f"{evidence['test']['e_value']:.4g} >= {1 / cfg.shadow_alpha:.4g})", evidence)
    return _shadow_progress(shadow[-1], result, cfg, evidence)


def _shadow_progress(w: Window, result: error_label.CountResult, cfg: AnalysisPolicy,
                     evidence: dict[str, Any]) -> Verdict:
    s = w.shadow
    accepted = result.sprt_accepts or (cfg.error_rate_tolerance > 0 and rate_upper_bound(
        s.only_candidate_failed, s.pairs, cfg.shadow_alpha) <= cfg.error_rate_tolerance)
    evidence["accepted"] = accepted
    if accepted and s.pairs >= cfg.min_requests and w.elapsed_seconds >= cfg.min_soak_seconds:
        return Verdict(Decision.PROMOTE, f"shadow: no regression over {s.pairs} mirrored pairs", evidence)
    if w.elapsed_seconds > cfg.max_window_seconds:
        return Verdict(Decision.PAUSE, f"shadow: no decision after {w.elapsed_seconds:.0f} s", evidence)
    return Verdict(Decision.CONTINUE, f"shadow: {s.pairs} pairs, {s.only_candidate_failed} candidate-only "
                                      f"and {s.only_stable_failed} stable-only failures", evidence)
