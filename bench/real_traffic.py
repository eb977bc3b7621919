"""Real-traffic scenarios for the judge, replayed tick by tick through the real `Analyzer`.

Each run simulates the gateway's cumulative counters second by second (requests, errors,
overload answers, per-track sessions and failed sessions counted per applied route, and
latency histograms on the gateway's own bucket edges) behind a metric provider, and runs
the default schedule the way `decide()` does: the judge is asked every `tick` seconds; a
step advances when it says PROMOTE and the step's minimum time has passed; ROLLBACK and
PAUSE end the run; HOLD, CONTINUE and INCONCLUSIVE stay. Nothing here re-implements the
judge: every verdict is `Analyzer.judge`'s.

Scenarios (all at p0 = 1 % unless named): steady 100 req/s as the reference; bursty
arrivals (a two-state rate, 0.5x and 3x the mean, bursts 20 % of the time); a shared
outage (both tracks at 30 % errors, or the pool's overload answers, for 20 s at a random
time); sticky sessions (300 users, Zipf
volumes, the gateway's hash split, one user whose requests always fail on any version;
judged per request, per session, or in shadow with every request mirrored);
low traffic (2 req/s, relctl's plan: shadow with every request mirrored, promoted within
the announced time?); a slow-tail latency regression (3 % of the candidate's requests 4x
slower); an SLO breach (p99 end to end <= 0.5 s; the stable's p99 is 0.34 s, the
candidate's latency 1.8x the stable's: p99 0.61 s).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np
from scipy.stats import lognorm

from controller.analysis.analyzer import Analyzer
from controller.analysis.planning import plan
from controller.analysis.providers.base import HistogramReading
from controller.analysis.types import Decision, Measurement, ShadowCounts, TrackCounts
from controller.gateway.metrics import LATENCY_BUCKETS
from policies.analysis import AnalysisPolicy

EDGES = LATENCY_BUCKETS + (math.inf,)
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
TRACKS = ("stable", "candidate")
LATENCY = (math.log(0.15), 0.35)        # lognormal e2e seconds: median 150 ms, p99 about 340 ms


@dataclass(frozen=True)
class Scenario:
    name: str
    rps: float = 100.0
    effect: float = 1.0                # candidate error rate = effect x p0
    p0: float = 0.01
    bursty: bool = False
    outage: str = ""                   # "" | "errors" | "overload": both tracks, 20 s at a random time
    users: int = 0                     # sticky sessions when > 0
    unit: str = "request"
    tail: tuple[float, float] = (0.0, 1.0)   # candidate: this share of requests this many times slower
    shift: float = 1.0                 # candidate latency multiplier
    slo: bool = False                  # policy objective p99 e2e <= 0.5 s
    shadow: bool = False               # judged in shadow, every request mirrored
    horizon: int = 600

    @property
    def latency(self) -> bool:
        return self.tail[0] > 0 or self.shift != 1.0 or self.slo or self.name.startswith("slow tail")

    @property
    def aa(self) -> bool:
        return self.effect == 1.0 and self.tail[0] == 0 and self.shift == 1.0


@dataclass
class Track:
    requests: int = 0
    errors: int = 0
    overload: int = 0
    sessions: int = 0
    sessions_failed: int = 0
    hist: np.ndarray = field(default_factory=lambda: np.zeros(len(EDGES), np.int64))   # per bucket, not cumulative


class SimProvider:
    """The gateway's counters as Prometheus would return them (live mode only, plus shadow pairs)."""

    def __init__(self) -> None:
        self.tracks = {t: Track() for t in TRACKS}
        self.pairs = ShadowCounts()

    def read(self, model, release_id, thresholds) -> Measurement:
        out = {}
        for name, t in self.tracks.items():
            cum = np.cumsum(t.hist)
            over = {k: int(cum[-1] - cum[LATENCY_BUCKETS.index(v)]) for k, v in thresholds.items()}
            out[name] = TrackCounts(t.requests, t.errors, latency_over=over, overload=t.overload,
                                    sessions=t.sessions, sessions_failed=t.sessions_failed)
        return Measurement(stable=out["stable"], candidate=out["candidate"], shadow=self.pairs)

    def stable_latency(self, model, release_id, kind) -> HistogramReading:
        if kind != "e2e":
            return HistogramReading(error="no streamed requests: no ttft series")
        cum = np.cumsum(self.tracks["stable"].hist)
        return HistogramReading(buckets={le: float(c) for le, c in zip(EDGES, cum)})


def bucket_probs(shift: float, tail: tuple[float, float]) -> np.ndarray:
    mu, sigma = LATENCY
    cdf = lambda scale: lognorm.cdf(np.array(EDGES[:-1]), sigma, scale=math.exp(mu) * scale)  # noqa: E731
    c = (1 - tail[0]) * cdf(shift) + tail[0] * cdf(shift * tail[1])
    return np.diff(np.concatenate([[0.0], c, [1.0]]))


class World:
    """One run's traffic, second by second."""

    def __init__(self, sc: Scenario, rng: np.random.Generator) -> None:
        self.sc, self.rng, self.p = sc, rng, SimProvider()
        self.burst = False
        self.outage_at = int(rng.integers(20, 200)) if sc.outage else -1
        self.probs = {"stable": bucket_probs(1.0, (0.0, 1.0)), "candidate": bucket_probs(sc.shift, sc.tail)}
        if sc.users:
            w = 1.0 / np.arange(1, sc.users + 1) ** 1.1
            self.weights = w / w.sum()
            self.points = rng.random(sc.users)                 # the gateway's session hash points
            self.broken = int(rng.integers(0, 20))             # a heavy user whose requests always fail
        self.new_epoch()

    def new_epoch(self) -> None:
        """A route applied (a new step): the gateway's session trackers start empty."""
        if self.sc.users:
            self.seen = np.zeros(self.sc.users, bool)
            self.failed = np.zeros(self.sc.users, bool)

    def second(self, t: int, share: float) -> int:
        """Serve one second at candidate `share` (0: stable only); returns candidate errors served."""
        sc, rng = self.sc, self.rng
        rate = sc.rps
        if sc.bursty:
            self.burst = rng.random() < (0.9 if self.burst else 0.025)     # bursts ~10 s, 20 % of the time
            rate *= 3.0 if self.burst else 0.5
        down = 0 <= t - self.outage_at < 20
        p = {"stable": sc.p0, "candidate": sc.p0 * sc.effect}
        if down and sc.outage == "errors":
            p = {k: max(v, 0.3) for k, v in p.items()}
        if sc.shadow and sc.users:
            return self._paired_sessions(rate, p)
        if sc.shadow:
            return self._paired(rng.poisson(rate), p)
        if sc.users:
            return self._sessions(rate, share, p)
        n = rng.poisson(rate)
        n_c = rng.binomial(n, share)
        bad = 0
        for track, count in (("stable", n - n_c), ("candidate", n_c)):
            errors = rng.binomial(count, p[track])
            overload = rng.binomial(count - errors, 0.3) if down and sc.outage == "overload" else 0
            self._serve(track, count, errors, overload)
            bad += errors if track == "candidate" else 0
        return bad

    def _serve(self, track: str, count: int, errors: int, overload: int = 0) -> None:
        tr = self.p.tracks[track]
        tr.requests += count
        tr.errors += errors
        tr.overload += overload
        tr.hist += self.rng.multinomial(count, self.probs[track])

    def _sessions(self, rate: float, share: float, p: dict) -> int:
        counts = self.rng.poisson(rate * self.weights)
        on_candidate = self.points < share
        bad = 0
        for track, mask in (("stable", ~on_candidate), ("candidate", on_candidate)):
            c = counts * mask
            e = self.rng.binomial(c, p[track])
            e[self.broken] = c[self.broken]
            new = (c > 0) & ~self.seen
            first_fail = (e > 0) & ~self.failed
            self.seen |= c > 0
            self.failed |= e > 0
            tr = self.p.tracks[track]
            tr.sessions += int(new.sum())
            tr.sessions_failed += int(first_fail.sum())
            self._serve(track, int(c.sum()), int(e.sum()))
            bad += int(e.sum()) if track == "candidate" else 0
        return bad

    def _paired_sessions(self, rate: float, p: dict) -> int:
        """Sticky users, every request mirrored: the broken user's requests fail on both sides."""
        counts = self.rng.poisson(rate * self.weights)
        n = int(counts.sum())
        broken = np.repeat(np.arange(self.sc.users), counts) == self.broken
        s_fail = (self.rng.random(n) < p["stable"]) | broken
        c_fail = (self.rng.random(n) < p["candidate"]) | broken
        return self._pairs(n, s_fail, c_fail)

    def _paired(self, n: int, p: dict) -> int:
        """Every request served by the stable (live) and mirrored to the candidate: nobody sees it."""
        s_fail = self.rng.random(n) < p["stable"]
        c_fail = self.rng.random(n) < p["candidate"]
        return self._pairs(n, s_fail, c_fail)

    def _pairs(self, n: int, s_fail: np.ndarray, c_fail: np.ndarray) -> int:
        self._serve("stable", n, int(s_fail.sum()))
        old = self.p.pairs
        self.p.pairs = ShadowCounts(old.pairs + n, old.only_candidate_failed + int((c_fail & ~s_fail).sum()),
                                    old.only_stable_failed + int((s_fail & ~c_fail).sum()))
        return 0


def policy(sc: Scenario, base: AnalysisPolicy) -> AnalysisPolicy:
    """The base policy, with the scenario's unit; latency judged only where the scenario is about
    latency (e2e: the simulated requests do not stream), which keeps the bench to minutes; the
    SLO scenario judges the objective alone, so that it is the rule that acts."""
    update = {"unit": sc.unit, "latency_metrics": ["e2e"] if sc.latency else []}
    if sc.slo:
        update["slo"] = [{"metric": "e2e", "quantile": 0.99, "max_seconds": 0.5}]
        update["latency_metrics"] = []
    return AnalysisPolicy(**{**base.model_dump(), **update})


def run_once(sc: Scenario, cfg: AnalysisPolicy, steps: list[float], step_seconds: int, tick: int, rng) -> dict:
    world = World(sc, rng)
    for t in range(-60, 0):                       # the stable's history in this release (shadow phase)
        world.second(t, 0.0)
    an = Analyzer(world.p, cfg)
    phase = "shadow" if sc.shadow else "canary"
    step, started, bad, held = 0, 0, 0, 0
    state = an.start_window("m", "r", 0.0 if sc.shadow else steps[0] / 100, T0, {})
    for t in range(1, sc.horizon + 1):
        bad += world.second(t, 0.0 if sc.shadow else steps[step] / 100)
        if t % tick:
            continue
        v, state = an.judge("m", "r", phase, T0 + timedelta(seconds=t), state)
        held += v.decision == Decision.HOLD
        if v.decision in (Decision.ROLLBACK, Decision.PAUSE):
            return {"outcome": v.decision.value, "seconds": t, "bad": bad, "held": held, "reason": v.reason}
        if v.decision == Decision.PROMOTE and (sc.shadow or t - started >= step_seconds):
            if sc.shadow or step == len(steps) - 1:
                return {"outcome": "promote", "seconds": t, "bad": bad, "held": held, "reason": v.reason}
            step, started = step + 1, t
            world.new_epoch()
            state = an.start_window("m", "r", steps[step] / 100, T0 + timedelta(seconds=t), state)
    return {"outcome": "horizon", "seconds": sc.horizon, "bad": bad, "held": held, "reason": ""}


def summarize(sc: Scenario, results: list[dict], announced: float | None) -> dict:
    out = [r["outcome"] for r in results]
    n = len(results)
    rate = lambda o: round(sum(x == o for x in out) / n, 4)  # noqa: E731
    rolled = [r for r in results if r["outcome"] == "rollback"]
    promoted = [r for r in results if r["outcome"] == "promote"]
    row = {"name": sc.name, "unit": sc.unit, "rps": sc.rps, "runs": n, "aa": sc.aa,
           "rollback_rate": rate("rollback"), "paused_rate": rate("pause"), "promoted_rate": rate("promote"),
           "srm_paused_rate": round(sum("sample-ratio" in r["reason"] for r in results) / n, 4),
           "held_runs_rate": round(sum(r["held"] > 0 for r in results) / n, 4),
           "detect_seconds_mean": round(float(np.mean([r["seconds"] for r in rolled])), 1) if rolled else None,
           "bad_answers_mean": round(float(np.mean([r["bad"] for r in results])), 2),
           "promote_seconds_mean": round(float(np.mean([r["seconds"] for r in promoted])), 1) if promoted else None,
           "false_rollback_rate": rate("rollback") if sc.aa else None}
    if announced is not None:
        row["announced_seconds"] = announced
        row["promoted_within_announced_rate"] = round(
            sum(r["outcome"] == "promote" and r["seconds"] <= announced for r in results) / n, 4)
    return row


def scenarios() -> list[Scenario]:
    return [
        Scenario("steady 5x", effect=5), Scenario("steady 2x", effect=2),
        Scenario("bursty A/A", bursty=True), Scenario("bursty 5x", bursty=True, effect=5),
        Scenario("bursty 2x", bursty=True, effect=2),
        Scenario("shared outage A/A", outage="errors"), Scenario("pool overload A/A", outage="overload"),
        Scenario("shared outage 5x", outage="errors", effect=5),
        Scenario("sticky A/A, unit request", users=300), Scenario("sticky A/A", users=300, unit="session"),
        Scenario("sticky 5x", users=300, unit="session", effect=5),
        Scenario("sticky 2x", users=300, unit="session", effect=2),
        Scenario("sticky in mirrored shadow A/A", users=300, shadow=True),
        Scenario("sticky in mirrored shadow 5x", users=300, shadow=True, effect=5),
        Scenario("sticky in mirrored shadow 2x", users=300, shadow=True, effect=2),
        Scenario("low traffic 2 req/s A/A", rps=2, shadow=True, horizon=2400),
        Scenario("low traffic 2 req/s 5x", rps=2, shadow=True, effect=5, horizon=2400),
        Scenario("slow tail A/A"), Scenario("slow tail 3 % x4", tail=(0.03, 4.0)),
        Scenario("SLO A/A", slo=True), Scenario("SLO breach (latency 1.8x)", slo=True, shift=1.8),
    ]


def run(args, base: AnalysisPolicy, rng) -> list[dict]:
    rows = []
    for sc in scenarios():
        if args.real_only and not any(word in sc.name for word in args.real_only):
            continue
        cfg = policy(sc, base)
        runs = args.real_aa_runs if sc.aa else args.real_runs
        announced = None
        if sc.shadow and not sc.users:      # relctl's plan at release start (true rate; relctl reads the recent one)
            announced = plan(sc.rps, sc.p0, args.steps, args.step_seconds, cfg, seed=1).announced_seconds
        results = [run_once(sc, cfg, args.steps, args.step_seconds, args.real_tick, rng) for _ in range(runs)]
        rows.append(summarize(sc, results, announced))
    return rows
