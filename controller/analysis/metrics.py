"""Which count metrics a canary is judged on, and how alpha is split between them."""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from controller.analysis import exact, latency
from controller.analysis.error_label import Segment, CountSpec
from controller.analysis.types import TrackCounts, Window
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


def canary_metrics(windows: list[Window], cfg: AnalysisPolicy,
                   error_windows: list[Window] | None = None) -> list[CountMetric]:
    """`windows` are canary windows, current last. Latency keys come from the fixed thresholds.
    `error_windows` (default: `windows`) carry the error counts per randomised unit (units.py);
    when they differ (sticky sessions), the requests' split is not the intended share, so the
    latency tests, which count requests, take the observed request share of each window and
    Ville's 1/alpha (approximate: valid when a request's latency does not depend on its user)."""
    observed = error_windows is not None and error_windows is not windows
    keys = sorted({k for w in windows for t in (w.stable, w.candidate) for k in t.latency_over
                   if latency.is_quantile_key(k)})
    error_alpha = cfg.alpha * cfg.error_alpha_share if keys else cfg.alpha
    out = [_metric(ERRORS, error_windows or windows, lambda t: t.errors, count_spec(cfg, error_alpha, cfg.min_effect),
                   cfg.error_rate_tolerance, cfg.later_step_threshold_factor)]
    for key in keys:
        q = latency.quantile_of(key)
        spec = count_spec(cfg, (cfg.alpha - error_alpha) / len(keys), cfg.latency_min_effect,
                          cap=functools.partial(latency.effect_for, q))
        out.append(_metric(key, windows, _latency_over(key), spec,
                           (1 - q) * spec.effect, cfg.later_step_threshold_factor, observed))
    return out


def _metric(name: str, windows: list[Window], count: Callable[[TrackCounts], int], spec: CountSpec,
            tolerance: float, later_factor: float, observed: bool = False) -> CountMetric:
    segments = tuple(Segment(count(w.candidate), count(w.candidate) + count(w.stable),
                             _request_share(w) if observed else w.canary_share) for w in windows)
    cur = windows[-1].candidate
    if observed:
        threshold = 1 / spec.alpha
    else:
        thresholds = exact.step_thresholds(windows[0].canary_share, spec, later_factor)
        threshold = thresholds.first if len(windows) == 1 else thresholds.later
    return CountMetric(name, spec, segments, count(cur), cur.requests, tolerance, threshold)


def _latency_over(key: str) -> Callable[[TrackCounts], int]:
    """A track's requests above the `key` latency threshold."""
    return lambda t: t.latency_over.get(key, 0)


def _request_share(w: Window) -> float:
    total = w.candidate.requests + w.stable.requests
    return min(max(w.candidate.requests / total, 1e-3), 1 - 1e-3) if total else w.canary_share


def count_spec(cfg: AnalysisPolicy, alpha: float, effect: float,
               cap: Callable[[float], float] = lambda e: e) -> CountSpec:
    """The count test's settings for one metric; `cap` keeps an effect possible (latency)."""
    return CountSpec(alpha=alpha, beta=cfg.beta, effect=cap(effect), k0=cfg.mixture_k0, sprt_weight=cfg.sprt_weight,
                     large_effect=cap(effect * cfg.large_effect_factor), large_weight=cfg.large_effect_weight)
