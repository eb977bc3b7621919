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

Two more, outside the judge-only replay: whole low-traffic releases through the real
reconcile loop (`loop_run`: store, decide, effects, the plan job reading the simulated
stable's last 600 s), and the stable's real exceedance rate over the latency thresholds
the analyzer fixes, over realistic latency distributions (`threshold_exceedance`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
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
    if args.loop_runs is not None or (args.real_only and any(w in LOOP_NAME for w in args.real_only)):
        healthy = 150 if args.loop_runs is None else args.loop_runs
        rows += loop_rows(healthy, args.loop_faulty_runs, args.seed)
    return rows


# --- The low-traffic plan replayed through the real reconcile loop (store, decide, effects, plan job).

LOOP_RPS, LOOP_TICK, LOOP_RECENT = 2.0, 5, 600
LOOP_NAME = "low traffic 2 req/s, real loop"


def loop_run(effect: float, seed: int, workdir, limit: int = 3000) -> dict:
    """One release of a model at 2 req/s (1 % errors on the stable), from creation to its end: the
    controller's loop every LOOP_TICK s on a real SQLite store; the traffic as the router says
    (mirrored pairs in shadow, the weighted split in a canary step). The plan reads the stable's
    last 600 s from the same simulated traffic, so its rates are estimates, as in production."""
    from controller.domain.phases import Phase
    from controller.reconcile import loop
    from tests.conftest import make_controller

    rng = np.random.default_rng(seed)
    c = make_controller(workdir)
    world = World(Scenario("low traffic loop", rps=LOOP_RPS, effect=effect), rng)
    history = rng.poisson(LOOP_RPS, LOOP_RECENT)                  # the stable's last 600 s, per second
    errors = rng.binomial(history, world.sc.p0)
    world.p.recent_traffic = lambda model, seconds: (int(history[-seconds:].sum()), int(errors[-seconds:].sum()))
    c.metrics = world.p
    c.champions.record("chat", "1", c.clock())
    r = c.store.create("chat", "2", "1", {"quantize": {"enabled": False}}, c.clock())
    t, bad, canary = 0, 0, False
    while r.phase not in (Phase.SUCCEEDED, Phase.ROLLED_BACK, Phase.PAUSED, Phase.FAILED) and t < limit:
        route = c.router.current("chat")
        mirrored = route is not None and route.mirror_to == "candidate"
        world.sc = replace(world.sc, shadow=mirrored)
        served = world.second(t, 0.0 if mirrored else c.router.weight("chat") / 100)
        bad += served if r.phase in (Phase.SHADOW, Phase.CANARY) else 0      # before a decision
        t += 1
        c.clock.advance(1)
        if t % LOOP_TICK:
            continue
        r = loop.reconcile(c, r.id)
        c.jobs.join(60)                         # the plan job (a thread) while deploying
        canary |= r.phase == Phase.CANARY
    loop._policy.cache_clear()                  # it keys on the store: one per run
    plan_status = r.status.get("plan") or {}
    moves = [e for e in c.store.events(r.id) if e["kind"] == "transition"]
    entered = next((e["at"] for e in moves if e["to_phase"] == "shadow"), None)
    left = next((e["at"] for e in moves if e["from_phase"] == "shadow"), None)
    shadow_seconds = (datetime.fromisoformat(left) - datetime.fromisoformat(entered)).total_seconds() \
        if entered and left else None
    return {"outcome": {"succeeded": "promote", "rolled_back": "rollback", "paused": "pause"}.get(r.phase.value,
                                                                                                  r.phase.value),
            "shadow_seconds": shadow_seconds, "announced": plan_status.get("announced_seconds"),
            "action": plan_status.get("action"), "canary": canary, "bad": bad,
            "promoted_from_shadow": r.phase == Phase.SUCCEEDED and not canary, "reason": r.reason}


def loop_rows(healthy: int, faulty: int, seed: int) -> list[dict]:
    import tempfile
    from pathlib import Path

    rows = []
    for name, effect, runs in ((f"{LOOP_NAME} A/A", 1.0, healthy), (f"{LOOP_NAME} 5x", 5.0, faulty)):
        if runs <= 0:
            continue
        results = []
        for i in range(runs):
            with tempfile.TemporaryDirectory() as d:
                results.append(loop_run(effect, seed + 1000 * int(effect) + i, Path(d)))
        rows.append(summarize_loop(name, effect, results))
    return rows


def summarize_loop(name: str, effect: float, results: list[dict]) -> dict:
    n = len(results)
    rate = lambda pred: round(sum(map(pred, results)) / n, 4)  # noqa: E731
    within = sum(r["outcome"] == "promote" and r["shadow_seconds"] <= r["announced"] for r in results) / n
    announced = sorted(r["announced"] for r in results if r["announced"] is not None)
    rolled = [r["shadow_seconds"] for r in results if r["outcome"] == "rollback" and r["shadow_seconds"] is not None]
    promoted = [r["shadow_seconds"] for r in results if r["outcome"] == "promote" and r["shadow_seconds"] is not None]
    row = {"name": name, "unit": "request", "rps": LOOP_RPS, "runs": n, "aa": effect == 1.0, "loop": True,
           "rollback_rate": rate(lambda r: r["outcome"] == "rollback"),
           "paused_rate": rate(lambda r: r["outcome"] == "pause"),
           "promoted_rate": rate(lambda r: r["outcome"] == "promote"),
           "promoted_from_shadow_rate": rate(lambda r: r["promoted_from_shadow"]),
           "canary_step_rate": rate(lambda r: r["canary"]),
           "shadow_plan_rate": rate(lambda r: r["action"] == "shadow"),
           "detect_seconds_mean": round(float(np.mean(rolled)), 1) if rolled else None,
           "promote_seconds_mean": round(float(np.mean(promoted)), 1) if promoted else None,
           "bad_answers_mean": round(float(np.mean([r["bad"] for r in results])), 2),
           "false_rollback_rate": rate(lambda r: r["outcome"] == "rollback") if effect == 1.0 else None}
    if effect == 1.0:
        row["promoted_within_announced_rate"] = round(within, 4)
        row["promoted_within_announced_se"] = round(math.sqrt(within * (1 - within) / n), 4)
    if announced:
        row["announced_seconds"] = announced[len(announced) // 2]
        row["announced_seconds_range"] = [announced[0], announced[-1]]
    return row


# --- Latency thresholds: the stable's real exceedance rate over the thresholds the judge fixes.

THRESHOLD_SAMPLES = 6000      # the stable's requests before the first canary step (60 s at 100 req/s)


def latency_scenarios() -> list[tuple[str, str, object]]:
    """(kind, description, frozen scipy distribution): end to end lognormal over medians 0.2-10 s and
    spreads sigma 0.4-1.0 (output lengths vary); time to first token lognormal 30 ms-1 s, sigma
    0.3-0.8, and with a queueing tail (10 % of requests 4x slower)."""
    out: list[tuple[str, str, object]] = []
    for sigma in (0.4, 0.7, 1.0):
        for med in np.geomspace(0.2, 10.0, 16):
            out.append(("e2e", f"lognormal median {med:.3g} s, sigma {sigma}", lognorm(sigma, scale=med)))
    for sigma in (0.3, 0.5, 0.8):
        for med in np.geomspace(0.03, 1.0, 12):
            out.append(("ttft", f"lognormal median {med:.3g} s, sigma {sigma}", lognorm(sigma, scale=med)))
    for med in np.geomspace(0.05, 0.5, 8):
        out.append(("ttft", f"lognormal median {med:.3g} s, sigma 0.3, 10 % queued 4x", _Mixture(med)))
    return out


class _Mixture:
    """90 % lognormal(median, 0.3) and 10 % lognormal(4 x median, 0.5): a queueing tail."""

    def __init__(self, median: float) -> None:
        self.parts = ((0.9, lognorm(0.3, scale=median)), (0.1, lognorm(0.5, scale=4 * median)))

    def sf(self, x: float) -> float:
        return float(sum(w * d.sf(x) for w, d in self.parts))

    def rvs(self, n: int, random_state: np.random.Generator) -> np.ndarray:
        fast = random_state.random(n) < self.parts[0][0]
        return np.where(fast, self.parts[0][1].rvs(n, random_state=random_state),
                        self.parts[1][1].rvs(n, random_state=random_state))


class _StableLatency:
    """A provider whose stable track served `samples` of one latency kind (the gateway's edges)."""

    def __init__(self, kind: str, samples: np.ndarray) -> None:
        self.kind, self.sorted = kind, np.sort(samples)

    def stable_latency(self, model, release_id, kind) -> HistogramReading:
        if kind != self.kind:
            return HistogramReading(error=f"no {kind} series")
        cum = np.searchsorted(self.sorted, np.array(EDGES), side="right")
        return HistogramReading(buckets={le: float(c) for le, c in zip(EDGES, cum)})


def threshold_exceedance(rng: np.random.Generator) -> dict:
    """Per scenario, the thresholds `fix_thresholds` (the analyzer's own code) chooses from
    THRESHOLD_SAMPLES stable requests, and the stable's true exceedance rate over each; then
    min / median / max per kind and quantile, the share within 0.5-2x the nominal rate, how many
    quantiles lay past the last edge (30 s: no threshold), and how often p95 and p99 shared one."""
    from controller.analysis.thresholds import fix_thresholds

    cfg = AnalysisPolicy()
    rows = []
    for kind, what, dist in latency_scenarios():
        samples = dist.rvs(THRESHOLD_SAMPLES, random_state=rng)
        fixed, _ = fix_thresholds(_StableLatency(kind, samples), "m", "r", cfg)
        over = {f"p{q * 100:g}": float(dist.sf(fixed[f"{kind}_p{q * 100:g}"])) for q in cfg.latency_quantiles
                if f"{kind}_p{q * 100:g}" in fixed}
        rows.append({"kind": kind, "distribution": what, "over": {k: round(v, 5) for k, v in over.items()},
                     "thresholds": {k: fixed[f"{kind}_{k}"] for k in over}})
    summary = {}
    for kind in ("e2e", "ttft"):
        mine = [r for r in rows if r["kind"] == kind]
        for q in cfg.latency_quantiles:
            key, nominal = f"p{q * 100:g}", 1 - q
            v = np.array([r["over"][key] for r in mine if key in r["over"]])
            summary[f"{kind}_{key}"] = {
                "nominal": round(nominal, 4), "scenarios": int(v.size), "min": round(float(v.min()), 5),
                "median": round(float(np.median(v)), 5), "max": round(float(v.max()), 5),
                "within_half_to_double": round(float(np.mean((v >= nominal / 2) & (v <= 2 * nominal))), 3),
                "beyond_last_edge": len(mine) - int(v.size)}
        summary[f"{kind}_p95_equals_p99"] = sum("p95" in r["thresholds"] and
                                                r["thresholds"]["p95"] == r["thresholds"].get("p99") for r in mine)
    return {"samples": THRESHOLD_SAMPLES, "summary": summary, "rows": rows}
