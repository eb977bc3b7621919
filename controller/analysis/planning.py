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

The announced time runs from the candidate's readiness to its promotion, and the model
follows what the controller really does (replayed through the reconcile loop, the plan's
times matched the loop's within noise):

- the judge decides only at the controller's ticks: a window's baseline is taken at the
  first tick past `settle_seconds`, and promotion comes at a tick (`tick_seconds`);
- a healthy run whose count test rejects first (a false rollback) is never promoted: it
  counts against `decide_quantile`, as it does for the user;
- the stable's rates are estimates: from recent counters (`plan_from_counts`) an error rate
  of 12 errors in 1,200 requests is known only to about +-30 %, and the time to decide
  rises steeply with it (at 2 req/s about 770 s at 1 %, 1,080 s at 1.2 %, 1,245 s at
  1.4 %). Planned at the point estimate, only 87 % of healthy releases at a true 1 % met
  the announced time. The plan holds for the estimate and for the error rate's upper
  RATE_CONFIDENCE bound, at the request rate's lower bound: the slower of the two.

Before canary steps, the policy's shadow phase is counted too.
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
from typing import Any, Callable

import numpy as np
from scipy.special import betaincinv, gammaincinv

from controller.analysis import error_label, sprt
from controller.analysis.error_label import CountSpec
from controller.analysis.metrics import count_spec
from policies.analysis import AnalysisPolicy

SIM_RUNS = 800
SIM_TICKS = 600
NEVER = math.inf
QUANTILE_Z = 1.645          # the announced quantile is bounded from above at 95 % confidence
# The controller's judging interval the plan assumes. settings.tick_seconds is 2 s by default; a
# faster tick only decides sooner, and the bench replays the loop at 5 s.
TICK_SECONDS = 5.0
# Rates read from recent counters are estimates: the plan holds for the error rate's upper bound at
# this confidence and the request rate's lower one (see Rates.plausible).
RATE_CONFIDENCE = 0.8


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
         cfg: AnalysisPolicy, seed: int = 0, shadow_seconds: float = 0.0, observed_requests: float = math.inf,
         tick_seconds: float = TICK_SECONDS) -> Plan:
    """The low-traffic plan for a release whose canary steps are `steps_pct` (% of traffic), after a
    shadow phase of `shadow_seconds` (the policy's; 0 when it has none). The rates were estimated
    from `observed_requests` requests (inf: known exactly)."""
    if requests_per_second <= 0:
        raise ValueError(f"requests_per_second must be > 0, got {requests_per_second}")
    if not 0 <= stable_error_rate < 1:
        raise ValueError(f"stable_error_rate must lie in [0, 1), got {stable_error_rate}")
    if tick_seconds <= 0:
        raise ValueError(f"tick_seconds must be > 0, got {tick_seconds}")
    rng = np.random.default_rng(seed)
    rates = Rates.plausible(requests_per_second, stable_error_rate, observed_requests)
    steps = tuple(step_estimate(rates, p / 100.0, cfg, rng, tick_seconds) for p in steps_pct)
    shadow = shadow_estimate(rates, cfg, rng, tick_seconds)
    slowest = max(s.seconds for s in steps)
    # Act only where a step could not decide before the judge gives up on it (max_window_seconds).
    action = "none" if slowest <= cfg.max_window_seconds else cfg.low_traffic
    if action == "shadow" and shadow.seconds >= len(steps) * slowest:
        action = "lengthen"                  # mirroring would not be faster
    settle = first_judged(cfg.settle_seconds, tick_seconds)   # every window's baseline waits this long
    longest = _round_up(max(slowest + settle, step_seconds))
    before = shadow_seconds + settle if shadow_seconds > 0 else 0.0
    announced = {"none": before + sum(max(s.seconds + settle, step_seconds) for s in steps),
                 "lengthen": before + len(steps) * longest, "shadow": shadow.seconds + settle}[action]
    return Plan(requests_per_second, stable_error_rate, step_seconds, steps, shadow, action,
                longest if action == "lengthen" else step_seconds, _round_up(announced), cfg.low_traffic)


def plan_from_counts(requests: int, errors: int, seconds: float, steps_pct: list[float], step_seconds: float,
                     cfg: AnalysisPolicy, seed: int = 0, shadow_seconds: float = 0.0,
                     tick_seconds: float = TICK_SECONDS) -> Plan:
    """The same from the stable's recent counters (e.g. the last 10 minutes before the release);
    the rates' uncertainty from so many requests is counted."""
    if seconds <= 0 or requests <= 0:
        raise ValueError(f"need requests > 0 over seconds > 0, got {requests} over {seconds}")
    return plan(requests / seconds, min(errors / requests, 0.5), steps_pct, step_seconds, cfg, seed, shadow_seconds,
                observed_requests=requests, tick_seconds=tick_seconds)


def first_judged(settle_seconds: float, tick_seconds: float) -> float:
    """When a new window's baseline is taken: the first tick at or past `settle_seconds` (and at
    least one tick: the window opens on the tick that moved the release)."""
    return tick_seconds * max(1, math.ceil(settle_seconds / tick_seconds - 1e-9))


@dataclass(frozen=True)
class Rates:
    """Per simulated run, the stable's request rate and error rate (column vectors); the runs form
    `groups` equal groups, one pair of rates each."""
    rps: np.ndarray
    p0: np.ndarray
    groups: int = 1

    @staticmethod
    def plausible(rps: float, p0: float, observed: float) -> Rates:
        """The rates themselves when `observed` is inf (known exactly). Else, from `observed` requests
        with p0 of them errors, two groups: the estimate, and the error rate's upper RATE_CONFIDENCE
        bound (Jeffreys posterior), both at the request rate's lower bound. The time to decide rises
        steeply with p0 (up to about 0.7 x error_rate_tolerance), so the plan must hold for an error
        rate somewhat above the one the counters show."""
        if not math.isfinite(observed):
            return Rates(np.full((SIM_RUNS, 1), rps), np.full((SIM_RUNS, 1), p0))
        errors = p0 * observed
        high = float(betaincinv(errors + 0.5, observed - errors + 0.5, RATE_CONFIDENCE))
        slow = rps * float(gammaincinv(observed + 0.5, 1 - RATE_CONFIDENCE)) / observed
        p = np.repeat([p0, max(p0, high)], SIM_RUNS // 2)[:, None]
        return Rates(np.full_like(p, slow), p, 2)

    def span(self) -> list[tuple[float, float]]:
        """(rate, error rate) pairs a horizon must cover: the slowest rate, the lowest and highest errors."""
        low = float(self.rps.min())
        return [(low, float(self.p0.min())), (low, float(np.median(self.p0))), (low, float(self.p0.max()))]


def step_estimate(rates: Rates, share: float, cfg: AnalysisPolicy, rng: np.random.Generator,
                  tick: float = TICK_SECONDS) -> StepEstimate:
    """Canary step at `share`: the errors metric's promotion rule for a healthy candidate."""
    alpha = cfg.alpha * cfg.error_alpha_share if cfg.latency_metrics else cfg.alpha
    spec = count_spec(cfg, alpha, cfg.min_effect)
    horizon = max(_horizon(r * share, r * p, p, share, spec, cfg) for r, p in rates.span())
    dt, ticks = _grid(horizon, tick)
    n_c = rng.poisson(rates.rps * share * dt, (SIM_RUNS, ticks)).cumsum(axis=1)
    n_s = rng.poisson(rates.rps * (1 - share) * dt, (SIM_RUNS, ticks)).cumsum(axis=1)
    e_c = rng.binomial(np.diff(n_c, axis=1, prepend=0), rates.p0).cumsum(axis=1)
    e_s = rng.binomial(np.diff(n_s, axis=1, prepend=0), rates.p0).cumsum(axis=1)
    return _first_promotion(e_c, e_s, n_c, share, spec, cfg.error_rate_tolerance, cfg, dt, groups=rates.groups)


def shadow_estimate(rates: Rates, cfg: AnalysisPolicy, rng: np.random.Generator,
                    tick: float = TICK_SECONDS) -> StepEstimate:
    """Every request mirrored: discordant pairs at share 1/2, the candidate-only rate vs tolerance."""
    spec = count_spec(cfg, cfg.shadow_alpha, cfg.min_effect)
    horizon = max(_horizon(r, r * 2 * p * (1 - p), p, 0.5, spec, cfg) for r, p in rates.span())
    dt, ticks = _grid(horizon, tick)
    one_side = rates.p0 * (1 - rates.p0)           # the candidate alone fails (or the stable alone)
    pairs = rng.poisson(rates.rps * dt, (SIM_RUNS, ticks))
    only_candidate = rng.binomial(pairs, one_side)
    only_stable = rng.binomial(pairs - only_candidate, one_side / (1 - one_side))
    return _first_promotion(only_candidate.cumsum(axis=1), only_stable.cumsum(axis=1), pairs.cumsum(axis=1), 0.5,
                            spec, cfg.error_rate_tolerance, cfg, dt, alpha=cfg.shadow_alpha, groups=rates.groups)


def _grid(horizon: float, tick: float) -> tuple[float, int]:
    """The simulation's step (whole ticks: the judge decides only at ticks; coarser where the horizon
    is long, which can only announce later) and the number of steps."""
    dt = tick * max(1, math.ceil(horizon / SIM_TICKS / tick))
    return dt, max(1, min(SIM_TICKS, math.ceil(horizon / dt)))


def _first_promotion(s: np.ndarray, f: np.ndarray, trials: np.ndarray, share: float, spec: CountSpec,
                     tolerance: float, cfg: AnalysisPolicy, dt: float, alpha: float | None = None,
                     groups: int = 1) -> StepEstimate:
    """Per run the first tick where the rule accepts, unless the count test rejected (a false
    rollback) at that tick or before; its decide_quantile (the slowest of the runs' `groups`) and
    mean, in seconds."""
    alpha = alpha or spec.alpha
    theta1 = sprt.theta_for_effect(share, spec.effect)
    llr = s * math.log(theta1 / share) + f * math.log((1 - theta1) / (1 - share))   # the judge's Wald statistic
    accepted = (llr <= sprt.log_accept_bound(spec.alpha, cfg.beta)) & (s + f > 0)
    if tolerance > 0:
        accepted |= _upper_bound(s, trials, alpha) <= tolerance
    times = dt * np.arange(1, s.shape[1] + 1)
    accepted &= (trials >= cfg.min_requests) & (times >= cfg.min_soak_seconds)[None, :]
    rejected = np.maximum.accumulate(_log_e(s, f, share, spec) >= -math.log(alpha), axis=1)
    accepted &= ~rejected                           # the judge checks rejection first, and it ends the run
    first = np.where(accepted.any(axis=1), times[accepted.argmax(axis=1)], NEVER)
    q = max(_quantile_upper_bound(g, cfg.decide_quantile) for g in np.split(first, groups))
    mean = float(first[np.isfinite(first)].mean()) if np.isfinite(first).any() else NEVER
    return StepEstimate(share, q, mean)


def _log_e(s: np.ndarray, f: np.ndarray, share: float, spec: CountSpec) -> np.ndarray:
    """error_label.log_e_values over arrays (the judge's averaged e-value of one window)."""
    return _per_distinct(s, f, lambda a, b: error_label.log_e_values(a, b, share, spec))


def _quantile_upper_bound(times: np.ndarray, q: float, z: float = QUANTILE_Z) -> float:
    """A one-sided 95 % upper confidence bound on the q-quantile of `times` (an order statistic):
    the tail past the 90 % quantile is flat, so the point estimate's noise would move the
    announced time by tens of seconds, and about half the plans would promise too little."""
    n = times.size
    k = min(n, math.ceil(n * q + z * math.sqrt(n * q * (1 - q))))
    return float(np.sort(times)[k - 1])


def _upper_bound(events: np.ndarray, trials: np.ndarray, alpha: float) -> np.ndarray:
    """bounds.rate_upper_bound over arrays."""
    def bound(e: np.ndarray, n: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            ub: np.ndarray = np.where(e < n, betaincinv(e + 1, np.maximum(n - e, 1), 1 - alpha), 1.0)
        return ub
    return _per_distinct(events, trials, bound)


def _per_distinct(a: np.ndarray, b: np.ndarray, fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """fn(a, b) elementwise for non-negative integer arrays, computed once per distinct (a, b)
    (simulated runs share most of them)."""
    width = int(b.max()) + 1
    keys, inverse = np.unique(a.ravel().astype(np.int64) * width + b.ravel(), return_inverse=True)
    values = fn((keys // width).astype(float), (keys % width).astype(float))
    out: np.ndarray = values[inverse.ravel()].reshape(a.shape)
    return out


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
