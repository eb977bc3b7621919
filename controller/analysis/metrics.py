"""Which count metrics a canary is judged on, and how alpha is split between them."""
from __future__ import annotations

from dataclasses import dataclass

from controller.analysis import exact, latency
from controller.analysis.error_label import Segment, CountSpec
from controller.analysis.types import Window
from policies.analysis import AnalysisPolicy

ERRORS = "errors"


@dataclass(frozen=True)
class CountMetric:
    name: str                                   # "errors" or a latency key such as "e2e_p99"
    spec: CountSpec
    segments: tuple[Segment, ...]
    candidate_events: int                       # current window
    candidate_requests: int                     # current window
    tolerance: float                            # accept when the candidate's rate is confidently below
    threshold: float                            # e-value that rolls back in the current window


def canary_metrics(windows: list[Window], cfg: AnalysisPolicy) -> list[CountMetric]:
    """`windows` are canary windows, current last. Latency keys come from the fixed thresholds."""
    keys = sorted({k for w in windows for t in (w.stable, w.candidate) for k in t.latency_over})
    error_alpha = cfg.alpha * cfg.error_alpha_share if keys else cfg.alpha
    out = [_metric(ERRORS, windows, lambda t: t.errors, count_spec(cfg, error_alpha, cfg.min_effect),
                   cfg.error_rate_tolerance, cfg.later_step_threshold_factor)]
    for key in keys:
        q = latency.quantile_of(key)
        spec = count_spec(cfg, (cfg.alpha - error_alpha) / len(keys), cfg.latency_min_effect,
                          cap=lambda e, q=q: latency.effect_for(q, e))
        out.append(_metric(key, windows, lambda t, k=key: t.latency_over.get(k, 0), spec,
                           (1 - q) * spec.effect, cfg.later_step_threshold_factor))
    return out


def _metric(name, windows, count, spec: CountSpec, tolerance: float, later_factor: float) -> CountMetric:
    segments = tuple(Segment(count(w.candidate), count(w.candidate) + count(w.stable), w.canary_share)
                     for w in windows)
    cur = windows[-1].candidate
    thresholds = exact.step_thresholds(windows[0].canary_share, spec, later_factor)
    threshold = thresholds.first if len(windows) == 1 else thresholds.later
    return CountMetric(name, spec, segments, count(cur), cur.requests, tolerance, threshold)


def count_spec(cfg: AnalysisPolicy, alpha: float, effect: float, cap=lambda e: e) -> CountSpec:
    """The count test's settings for one metric; `cap` keeps an effect possible (latency)."""
    return CountSpec(alpha=alpha, beta=cfg.beta, effect=cap(effect), k0=cfg.mixture_k0, sprt_weight=cfg.sprt_weight,
                     large_effect=cap(effect * cfg.large_effect_factor), large_weight=cfg.large_effect_weight)
