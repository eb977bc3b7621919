"""Environment health: is the stable itself unwell, or the pool shedding load?

A shared outage (a backend or dependency failing for both tracks) or pool-wide overload
answers say nothing about the candidate. The error-label test stays valid through them
(load swings cancel), but a step must not advance on evidence gathered then, and a hard
guard on the candidate's raw rate would blame it. So the analyzer *holds* while:

- the stable's error rate over the last `health_window_seconds` is confidently (exact
  Clopper-Pearson lower bound at `health_alpha`) above `health_factor` times its own
  baseline in this release and above `health_min_rate`; the baseline starts from the
  stable's counters at the first reading (its traffic in this release so far) and grows by
  healthy stretches only, so an outage never raises it; or
- more than `max_overload_rate` of recent requests, both tracks together, got the pool's
  overload answer.

The call uses the stable's counts (and pool-wide overload) alone, never the candidate's,
so a candidate regression cannot hold its own canary. State is plain JSON.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scipy.special import betaincinv

from controller.analysis.types import Measurement, TrackCounts
from policies.analysis import AnalysisPolicy

MIN_BASELINE_REQUESTS = 200     # below this the stable's own rate is too noisy to be a baseline


@dataclass(frozen=True)
class Health:
    healthy: bool
    reason: str
    evidence: dict[str, Any]


def initial_state() -> dict[str, Any]:
    return {"samples": [], "base_requests": 0, "base_errors": 0, "unhealthy_since": None,
            "last_unhealthy_at": None}


def update(state: dict[str, Any] | None, reading: Measurement, now: datetime,
           cfg: AnalysisPolicy) -> tuple[Health, dict[str, Any]]:
    """Add this reading (cumulative counters; both tracks present), judge the recent stretch,
    return the new state."""
    st = {**initial_state(), **(state or {})}
    t = now.timestamp()
    stable, candidate = reading.stable or TrackCounts(), reading.candidate or TrackCounts()
    sample = [t, stable.requests, stable.errors, stable.overload + candidate.overload,
              stable.requests + candidate.requests]
    if not st["samples"] and st["base_requests"] == 0:
        # The first reading: the stable's counters so far in this release (its shadow phase,
        # its traffic before the canary) are its baseline.
        st["base_requests"], st["base_errors"] = sample[1], sample[2]
    samples = [s for s in st["samples"] if all(a >= b for a, b in zip(sample[1:], s[1:]))]  # drop after a reset
    samples.append(sample)
    # Keep one sample at or before the window's start, so the recent stretch spans it.
    start = t - cfg.health_window_seconds
    older = [s for s in samples if s[0] <= start]
    samples = older[-1:] + [s for s in samples if s[0] > start]
    health = assess(samples, st["base_requests"], st["base_errors"], cfg)
    if health.healthy and len(samples) >= 2:
        prev = samples[-2]
        st["base_requests"] += sample[1] - prev[1]
        st["base_errors"] += sample[2] - prev[2]
    if health.healthy:
        st["unhealthy_since"] = None
    else:
        st["unhealthy_since"] = st["unhealthy_since"] or now.isoformat()
        st["last_unhealthy_at"] = now.isoformat()
    st["samples"] = samples
    return health, st


def assess(samples: list[list[float]], base_requests: float, base_errors: float, cfg: AnalysisPolicy) -> Health:
    """samples: [time, stable requests, stable errors, overload (both tracks), requests (both)], oldest first."""
    if len(samples) < 2:
        return Health(True, "no recent stretch yet", {})
    (_, n0, e0, o0, r0), (_, n1, e1, o1, r1) = samples[0], samples[-1]
    n, e, overload, requests = n1 - n0, e1 - e0, o1 - o0, r1 - r0
    baseline = base_errors / base_requests if base_requests >= MIN_BASELINE_REQUESTS else None
    limit = max(cfg.health_factor * (baseline or 0.0), cfg.health_min_rate)
    low = _lower_bound(e, n, cfg.health_alpha)
    evidence = {"stable_recent_requests": n, "stable_recent_errors": e, "stable_rate_lower_bound": round(low, 5),
                "stable_baseline_rate": None if baseline is None else round(baseline, 5),
                "unhealthy_above": round(limit, 5), "recent_overload": overload, "recent_requests": requests}
    if low > limit:
        return Health(False, f"stable unhealthy: {e} errors in its last {n} requests ({e / n:.1%}), above "
                             f"{limit:.1%} ({cfg.health_factor:g}x its baseline "
                             f"{'unknown' if baseline is None else f'{baseline:.2%}'})", evidence)
    if requests > 0 and overload > cfg.max_overload_rate * requests:
        return Health(False, f"pool overloaded: {overload} of the last {requests} requests got the serving "
                             f"layer's overload answer", evidence)
    return Health(True, "stable healthy", evidence)


def _lower_bound(events: float, trials: float, alpha: float) -> float:
    """One-sided exact (Clopper-Pearson) lower bound on a rate; 0 with no events."""
    if trials <= 0 or events <= 0:
        return 0.0
    return float(betaincinv(events, trials - events + 1, alpha))
