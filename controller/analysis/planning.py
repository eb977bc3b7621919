"""How long a step needs to decide, from the recent request rate: the low-traffic plan.

At 2 req/s a 5 % step sends the candidate 0.1 req/s: `min_requests` and the evidence for
"no regression" take far longer than a 30 s step. At release start relctl estimates, for
each canary step and for a paired shadow with every request mirrored, the time within
which `decide_quantile` (90 %) of *healthy* candidates reach the judge's promotion rule
(Wald's acceptance or the tolerance bound, `min_requests`, `min_soak_seconds`) at the
policy's effect size and alpha. The estimate simulates that rule with the judge's own
functions on Poisson arrivals (seeded: the same inputs give the same plan), then acts per
`analysis.low_traffic`:

- `lengthen`: every step lasts long enough for its slowest step;
- `shadow`: keep the candidate in shadow with every request mirrored -- the paired test
  gets all the traffic and no user sees a candidate answer -- and promote from there;
- `none`: keep the policy's steps, and say how long they will really take.

The announced time runs from the candidate's readiness to its promotion: each window's
`settle_seconds` and, before canary steps, the policy's shadow phase are counted in it.
The domain acts on the plan (controller/domain/low_traffic.py) from `Plan.summary()`,
stored with the release.

The step estimates assume the split randomises requests. With sticky sessions
(`analysis.unit: session`) they are optimistic -- a step holds only as many units as users
-- and the mirrored shadow, paired per request and indifferent to who sent it, is the
robust choice.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.special import betaincinv

from controller.analysis import sprt
from controller.analysis.error_label import CountSpec
from controller.analysis.metrics import count_spec
from policies.analysis import AnalysisPolicy

SIM_RUNS = 800
SIM_TICKS = 600
NEVER = math.inf
QUANTILE_Z = 1.645          # the announced quantile is bounded from above at 95 % confidence


@dataclass(frozen=True)
class StepEstimate:
    share: float               # candidate share (0.5 for the paired shadow test)
    seconds: float             # decide_quantile of healthy candidates have met the promotion rule by then
    mean_seconds: float


@dataclass(frozen=True)
class Plan:
    requests_per_second: float
    stable_error_rate: float
    step_seconds: float        # the policy's
    steps: tuple[StepEstimate, ...]
    shadow: StepEstimate       # every request mirrored
    action: str                # none | lengthen | shadow (what relctl does)
    recommended_step_seconds: float
    announced_seconds: float   # time to promotion relctl announces for a healthy candidate
    policy_action: str = ""    # analysis.low_traffic, what the policy asked for

    def event(self) -> dict[str, Any]:
        """The plan as a release event's payload (JSON-ready: "never" is null, as PostgreSQL's JSON
        has no Infinity)."""
        d: dict[str, Any] = _json_safe(asdict(self))
        d["message"] = self.message()
        return d

    def summary(self) -> dict[str, Any]:
        """What the release stores and acts on: the choice and its times (JSON: no infinities)."""
        return {"action": self.action, "policy_action": self.policy_action,
                "requests_per_second": round(self.requests_per_second, 4),
                "stable_error_rate": round(self.stable_error_rate, 6),
                "announced_seconds": _finite(self.announced_seconds),
                "step_seconds": _finite(self.recommended_step_seconds), "policy_step_seconds": self.step_seconds,
                "slowest_step_seconds": _finite(max(s.seconds for s in self.steps)),
                "shadow_seconds": _finite(self.shadow.seconds), "message": self.message()}

    def message(self) -> str:
        need = ", ".join(f"{s.share:.0%}: {s.seconds:.0f} s" for s in self.steps)
        head = (f"{self.requests_per_second:.3g} req/s, stable error rate {self.stable_error_rate:.2%}; "
                f"time for {len(self.steps)} steps to decide ({need}); shadow with every request mirrored: "
                f"{self.shadow.seconds:.0f} s")
        if self.action == "lengthen":
            return f"{head}. Steps lengthened to {self.recommended_step_seconds:.0f} s; promotion expected " \
                   f"within {self.announced_seconds:.0f} s"
        if self.action == "shadow":
            return f"{head}. Kept in shadow with every request mirrored; promotion expected within " \
                   f"{self.announced_seconds:.0f} s"
        return f"{head}. Promotion expected within {self.announced_seconds:.0f} s"


def plan(requests_per_second: float, stable_error_rate: float, steps_pct: list[float], step_seconds: float,
         cfg: AnalysisPolicy, seed: int = 0, shadow_seconds: float = 0.0) -> Plan:
    """The low-traffic plan for a release whose canary steps are `steps_pct` (% of traffic), after a
    shadow phase of `shadow_seconds` (the policy's; 0 when it has none)."""
    if requests_per_second <= 0:
        raise ValueError(f"requests_per_second must be > 0, got {requests_per_second}")
    if not 0 <= stable_error_rate < 1:
        raise ValueError(f"stable_error_rate must lie in [0, 1), got {stable_error_rate}")
    rng = np.random.default_rng(seed)
    steps = tuple(step_estimate(requests_per_second, stable_error_rate, p / 100.0, cfg, rng) for p in steps_pct)
    shadow = shadow_estimate(requests_per_second, stable_error_rate, cfg, rng)
    slowest = max(s.seconds for s in steps)
    # Act only where a step could not decide before the judge gives up on it (max_window_seconds).
    action = "none" if slowest <= cfg.max_window_seconds else cfg.low_traffic
    if action == "shadow" and shadow.seconds >= len(steps) * slowest:
        action = "lengthen"                  # mirroring would not be faster
    settle = cfg.settle_seconds                # every window waits this long before it counts
    longest = _round_up(max(slowest + settle, step_seconds))
    before = shadow_seconds + settle if shadow_seconds > 0 else 0.0
    announced = {"none": before + sum(max(s.seconds + settle, step_seconds) for s in steps),
                 "lengthen": before + len(steps) * longest, "shadow": shadow.seconds + settle}[action]
    return Plan(requests_per_second, stable_error_rate, step_seconds, steps, shadow, action,
                longest if action == "lengthen" else step_seconds, _round_up(announced), cfg.low_traffic)


def plan_from_counts(requests: int, errors: int, seconds: float, steps_pct: list[float], step_seconds: float,
                     cfg: AnalysisPolicy, seed: int = 0, shadow_seconds: float = 0.0) -> Plan:
    """The same from the stable's recent counters (e.g. the last 10 minutes before the release)."""
    if seconds <= 0 or requests <= 0:
        raise ValueError(f"need requests > 0 over seconds > 0, got {requests} over {seconds}")
    return plan(requests / seconds, min(errors / requests, 0.5), steps_pct, step_seconds, cfg, seed, shadow_seconds)


def step_estimate(rps: float, p0: float, share: float, cfg: AnalysisPolicy, rng: np.random.Generator) -> StepEstimate:
    """Canary step at `share`: the errors metric's promotion rule for a healthy candidate."""
    alpha = cfg.alpha * cfg.error_alpha_share if cfg.latency_metrics else cfg.alpha
    spec = count_spec(cfg, alpha, cfg.min_effect)
    horizon = _horizon(rps * share, rps * p0, p0, share, spec, cfg)
    dt = horizon / SIM_TICKS
    n_c = rng.poisson(rps * share * dt, (SIM_RUNS, SIM_TICKS)).cumsum(axis=1)
    n_s = rng.poisson(rps * (1 - share) * dt, (SIM_RUNS, SIM_TICKS)).cumsum(axis=1)
    e_c = rng.binomial(np.diff(n_c, axis=1, prepend=0), p0).cumsum(axis=1)
    e_s = rng.binomial(np.diff(n_s, axis=1, prepend=0), p0).cumsum(axis=1)
    return _first_promotion(e_c, e_s, n_c, share, spec, cfg.error_rate_tolerance, cfg, dt)


def shadow_estimate(rps: float, p0: float, cfg: AnalysisPolicy, rng: np.random.Generator) -> StepEstimate:
    """Every request mirrored: discordant pairs at share 1/2, the candidate-only rate vs tolerance."""
    spec = count_spec(cfg, cfg.shadow_alpha, cfg.min_effect)
    discordant = 2 * p0 * (1 - p0)
    horizon = _horizon(rps, rps * discordant, p0, 0.5, spec, cfg)
    dt = horizon / SIM_TICKS
    pairs = rng.poisson(rps * dt, (SIM_RUNS, SIM_TICKS))
    only_candidate = rng.binomial(pairs, p0 * (1 - p0))
    only_stable = rng.binomial(pairs - only_candidate, 0.5 * discordant / (1 - p0 * (1 - p0)))
    return _first_promotion(only_candidate.cumsum(axis=1), only_stable.cumsum(axis=1), pairs.cumsum(axis=1), 0.5,
                            spec, cfg.error_rate_tolerance, cfg, dt, alpha=cfg.shadow_alpha)


def _first_promotion(s: np.ndarray, f: np.ndarray, trials: np.ndarray, share: float, spec: CountSpec,
                     tolerance: float, cfg: AnalysisPolicy, dt: float, alpha: float | None = None) -> StepEstimate:
    """Per run the first tick where the rule accepts; its decide_quantile and mean, in seconds."""
    alpha = alpha or spec.alpha
    theta1 = sprt.theta_for_effect(share, spec.effect)
    llr = s * math.log(theta1 / share) + f * math.log((1 - theta1) / (1 - share))   # the judge's Wald statistic
    accepted = (llr <= sprt.log_accept_bound(spec.alpha, cfg.beta)) & (s + f > 0)
    if tolerance > 0:
        accepted |= _upper_bound(s, trials, alpha) <= tolerance
    times = dt * np.arange(1, s.shape[1] + 1)
    accepted &= (trials >= cfg.min_requests) & (times >= cfg.min_soak_seconds)[None, :]
    first = np.where(accepted.any(axis=1), times[accepted.argmax(axis=1)], NEVER)
    q = _quantile_upper_bound(first, cfg.decide_quantile)
    mean = float(first[np.isfinite(first)].mean()) if np.isfinite(first).any() else NEVER
    return StepEstimate(share, q, mean)


def _quantile_upper_bound(times: np.ndarray, q: float, z: float = QUANTILE_Z) -> float:
    """A one-sided 95 % upper confidence bound on the q-quantile of `times` (an order statistic):
    the tail past the 90 % quantile is flat, so the point estimate's noise would move the
    announced time by tens of seconds, and about half the plans would promise too little."""
    n = times.size
    k = min(n, math.ceil(n * q + z * math.sqrt(n * q * (1 - q))))
    return float(np.sort(times)[k - 1])


def _upper_bound(events: np.ndarray, trials: np.ndarray, alpha: float) -> np.ndarray:
    """bounds.rate_upper_bound over arrays, computed once per distinct (events, trials)."""
    width = int(trials.max()) + 1
    keys, inverse = np.unique(events.ravel().astype(np.int64) * width + trials.ravel(), return_inverse=True)
    e, n = (keys // width).astype(float), (keys % width).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        ub = np.where(e < n, betaincinv(e + 1, np.maximum(n - e, 1), 1 - alpha), 1.0)
    return ub[inverse.ravel()].reshape(events.shape)


def _horizon(unit_rate: float, event_rate: float, p0: float, share: float, spec: CountSpec,
             cfg: AnalysisPolicy) -> float:
    """A simulated span long enough for nearly every healthy run: a few times Wald's expected time."""
    waits = [cfg.min_requests / unit_rate, cfg.min_soak_seconds]
    theta1 = sprt.theta_for_effect(share, spec.effect)
    drift = share * math.log(theta1 / share) + (1 - share) * math.log((1 - theta1) / (1 - share))
    if event_rate > 0:
        bound = sprt.log_accept_bound(spec.alpha, cfg.beta)
        waits.append(bound / drift / event_rate)           # Wald's mean events under H0, in seconds
    if 0 < cfg.error_rate_tolerance and p0 < cfg.error_rate_tolerance:
        gap = cfg.error_rate_tolerance - p0                # normal approximation of the bound's wait
        z = -math.log(spec.alpha)
        waits.append(2 * z * p0 / gap ** 2 / unit_rate + 2 * z / cfg.error_rate_tolerance / unit_rate)
    return 4 * max(min(waits[2:], default=waits[0]), *waits[:2])


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _finite(seconds: float) -> float | None:
    return round(seconds, 1) if math.isfinite(seconds) else None


def _round_up(seconds: float) -> float:
    if not math.isfinite(seconds):
        return seconds
    return float(math.ceil(seconds / 10.0) * 10)
