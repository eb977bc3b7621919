"""Absolute latency objectives (`analysis.slo`): e.g. p99 end to end <= 0.5 s.

An objective "quantile q <= x seconds" holds when at most 1 − q of requests are slower
than x. For each track, the requests over x among all its requests are a Bernoulli stream,
and the one-sided Beta-mixture Bayes factor against rate 1 − q (prior restricted to rates
above it) is an e-value for "the objective is broken" -- a supermartingale whenever the
rate is at most 1 − q, so it may be checked at every tick. The candidate is rolled back
when its e-value reaches 1/slo_alpha and the stable's does not: a breach shared by both
tracks is the environment's, not the version's. Counts run over all canary windows.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from controller.analysis import beta_mixture, latency
from controller.analysis.types import Window
from policies.analysis import AnalysisPolicy, SloObjective

SLO_K0 = 10.0


@dataclass(frozen=True)
class SloResult:
    key: str
    objective: SloObjective
    candidate_over: int
    candidate_requests: int
    stable_over: int
    stable_requests: int
    candidate_log_e: float
    stable_log_e: float
    alpha: float

    @property
    def candidate_breaks(self) -> bool:
        return self.candidate_log_e >= -math.log(self.alpha)

    @property
    def stable_breaks(self) -> bool:
        return self.stable_log_e >= -math.log(self.alpha)

    def evidence(self) -> dict[str, Any]:
        return {"objective": f"{self.objective.metric} p{self.objective.quantile * 100:g} <= "
                             f"{self.objective.max_seconds:g} s",
                "candidate_over": self.candidate_over, "candidate_requests": self.candidate_requests,
                "stable_over": self.stable_over, "stable_requests": self.stable_requests,
                "candidate_e_value": _e(self.candidate_log_e), "stable_e_value": _e(self.stable_log_e),
                "threshold": round(1 / self.alpha, 4), "candidate_breaks": self.candidate_breaks,
                "stable_breaks": self.stable_breaks}


def judge(windows: list[Window], cfg: AnalysisPolicy) -> list[SloResult]:
    """One result per objective whose counts the windows carry (canary windows, current last)."""
    out = []
    for obj in cfg.slo:
        key = latency.slo_key(obj.metric, obj.max_seconds)
        if not any(key in w.candidate.latency_over for w in windows):
            continue
        c_over = sum(w.candidate.latency_over.get(key, 0) for w in windows)
        c_n = sum(w.candidate.requests for w in windows)
        s_over = sum(w.stable.latency_over.get(key, 0) for w in windows)
        s_n = sum(w.stable.requests for w in windows)
        bound = 1 - obj.quantile
        out.append(SloResult(key, obj, c_over, c_n, s_over, s_n, _log_e(c_over, c_n, bound),
                             _log_e(s_over, s_n, bound), cfg.slo_alpha))
    return out


def breach(results: list[SloResult]) -> SloResult | None:
    """The first objective the candidate breaks and the stable keeps, if any."""
    return next((r for r in results if r.candidate_breaks and not r.stable_breaks), None)


def _log_e(over: int, requests: int, bound: float) -> float:
    if requests <= 0:
        return 0.0
    return beta_mixture.log_bayes_factor(min(over, requests), requests, bound, SLO_K0)


def _e(log_e: float) -> float:
    return float(f"{math.exp(min(log_e, 690.0)):.6g}")
