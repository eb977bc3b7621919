"""Blast radius of canary judges: bad answers served before a faulty candidate is rolled back.

Feeds the same simulated traffic (per second: requests split at random with share ρ,
errors drawn per track) to relctl's judge and to faithful re-implementations of
Flagger's default analysis (interval 1 m, threshold 5, request success >= 99 %) and of an
Argo Rollouts AnalysisTemplate (interval 1 m, failureLimit 3, success >= 0.99).

relctl's judge runs here as a vectorised replica built from the same library functions
(the count-test table, SPRT, Clopper-Pearson, SRM); on the first runs of every scenario
each tick is cross-checked against the real `controller.analysis.judge.evaluate`.

    python bench/blast_radius.py                  # table
    python bench/blast_radius.py --json           # one JSON object
    python bench/blast_radius.py --real-only      # only the real-traffic scenarios (bench/real_traffic.py)
                                                  # and the latency thresholds' real exceedance
    python bench/blast_radius.py --real-only loop # whole low-traffic releases through the reconcile loop
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import betaincinv

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import real_traffic  # noqa: E402
from controller.analysis import beta_mixture, error_label, exact, guards, sprt  # noqa: E402
from controller.analysis.judge import evaluate  # noqa: E402
from controller.analysis.metrics import canary_metrics, count_spec  # noqa: E402
from controller.analysis.types import Decision, ShadowCounts, TrackCounts, Window  # noqa: E402
from policies.analysis import AnalysisPolicy  # noqa: E402
from pydantic import ValidationError  # noqa: E402

NEVER = np.iinfo(np.int32).max


@dataclass
class Traffic:
    """Cumulative per-second counts, shape (runs, seconds); column t holds counts after t+1 s."""
    n_c: np.ndarray
    e_c: np.ndarray
    n_s: np.ndarray
    e_s: np.ndarray


@dataclass
class Outcome:
    """Per run: the second (1-based) of the first rollback / promotion / pause, NEVER if none."""
    rollback: np.ndarray
    promote: np.ndarray
    pause: np.ndarray


def simulate_canary(p0: float, p1: float, rho: float, rps: int, runs: int, seconds: int,
                    rng: np.random.Generator) -> Traffic:
    n_c = rng.binomial(rps, rho, (runs, seconds))
    n_s = rps - n_c
    e_c, e_s = rng.binomial(n_c, p1), rng.binomial(n_s, p0)
    return Traffic(*(a.cumsum(axis=1, dtype=np.int64) for a in (n_c, e_c, n_s, e_s)))


def simulate_shadow(p0: float, p1: float, rps: int, runs: int, seconds: int,
                    rng: np.random.Generator) -> tuple[Traffic, np.ndarray]:
    """Paired: every request runs on both tracks (independent failures). In the Traffic,
    n_* = pairs, e_c = only the candidate failed, e_s = only the stable failed; the second
    value is the cumulative count of pairs where both failed."""
    probs = [p1 * (1 - p0), p0 * (1 - p1), p0 * p1, (1 - p0) * (1 - p1)]
    draws = rng.multinomial(rps, probs, (runs, seconds)).cumsum(axis=1, dtype=np.int64)
    pairs = np.full((runs, seconds), rps).cumsum(axis=1, dtype=np.int64)
    return Traffic(pairs, draws[..., 0], pairs, draws[..., 1]), draws[..., 2]


def log_e(s: np.ndarray, f: np.ndarray, rho: float, spec: error_label.CountSpec) -> np.ndarray:
    """error_label.log_e_values, evaluated once per distinct (s, f) pair (runs share most pairs)."""
    pairs, inverse = np.unique(np.stack([s.ravel(), f.ravel()]), axis=1, return_inverse=True)
    values = error_label.log_e_values(pairs[0].astype(float), pairs[1].astype(float), rho, spec)
    return values[inverse.ravel()].reshape(s.shape)


def sprt_llr(e_c: np.ndarray, e_s: np.ndarray, rho: float, theta1: float) -> np.ndarray:
    """Wald's log likelihood ratio on error labels (sprt.log_likelihood_ratio, vectorised)."""
    return e_c * math.log(theta1 / rho) + e_s * math.log((1 - theta1) / (1 - rho))


def guard_test(e_c: np.ndarray, e_s: np.ndarray, rho, cfg: AnalysisPolicy) -> np.ndarray:
    """The hard guard's comparison of the tracks (guards._worse, vectorised; rho a scalar or per run)."""
    rho = np.broadcast_to(np.asarray(rho, float), np.shape(e_c))
    out = np.zeros(np.shape(e_c), bool)
    for r in np.unique(rho):
        at = rho == r
        out[at] = beta_mixture.log_bayes_factor_array(e_c[at], e_s[at], float(r), guards.GUARD_K0) \
            >= -math.log(cfg.guard_alpha)
    return out


def first_true(mask: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Per row, the time of the first True column, NEVER if none."""
    hit = mask.any(axis=1)
    return np.where(hit, times[mask.argmax(axis=1)], NEVER).astype(np.int64)


def relctl_canary(tr: Traffic, cfg: AnalysisPolicy, rho: float, tick: int) -> Outcome:
    idx = np.arange(tick - 1, tr.n_c.shape[1], tick)
    n_c, e_c, n_s, e_s = (a[:, idx] for a in (tr.n_c, tr.e_c, tr.n_s, tr.e_s))
    times = idx + 1
    metric = canary_metrics([Window(rho, 0, TrackCounts(), TrackCounts())], cfg)[0]
    rejected = log_e(e_c, e_s, rho, metric.spec) >= math.log(metric.threshold)     # the first step's
    guard = (n_c >= cfg.guard_min_requests) & (e_c > cfg.max_error_rate * n_c) & guard_test(e_c, e_s, rho, cfg)
    srm = beta_mixture.log_bayes_factor_array(n_c, n_s, rho, cfg.srm_k0, one_sided=False) >= -math.log(cfg.srm_alpha)
    llr = sprt_llr(e_c, e_s, rho, sprt.theta_for_effect(rho, metric.spec.effect))
    accepted = (llr <= sprt.log_accept_bound(metric.spec.alpha, cfg.beta)) & (e_c + e_s > 0)
    if cfg.error_rate_tolerance > 0:
        with np.errstate(invalid="ignore", divide="ignore"):
            ub = np.where(e_c < n_c, betaincinv(e_c + 1, np.maximum(n_c - e_c, 1), 1 - metric.spec.alpha), 1.0)
        accepted |= ub <= cfg.error_rate_tolerance
    ready = (n_c >= cfg.min_requests) & (times >= cfg.min_soak_seconds)[None, :]
    # Order of checks as in the judge: guard, sample ratio, rejection, promotion.
    pause = srm & ~guard
    rollback = guard | (rejected & ~srm)
    promote = ready & accepted & ~rollback & ~srm
    return Outcome(first_true(rollback, times), first_true(promote, times), first_true(pause, times))


def relctl_shadow(tr: Traffic, cfg: AnalysisPolicy, tick: int) -> Outcome:
    idx = np.arange(tick - 1, tr.n_c.shape[1], tick)
    pairs, b, c = tr.n_c[:, idx], tr.e_c[:, idx], tr.e_s[:, idx]
    times = idx + 1
    spec = count_spec(cfg, cfg.shadow_alpha, cfg.min_effect)
    guard = (pairs >= cfg.guard_min_requests) & (b > cfg.max_error_rate * pairs) & guard_test(b, c, 0.5, cfg)
    rollback = guard | (log_e(b, c, 0.5, spec) >= -math.log(cfg.shadow_alpha))
    never = np.full(len(pairs), NEVER, dtype=np.int64)
    return Outcome(first_true(rollback, times), never, never)


def flagger(tr: Traffic, interval: int = 60, threshold: int = 5, min_success_pct: float = 99.0) -> np.ndarray:
    """Flagger: every interval, the canary's request success rate over the last interval must be
    >= min_success_pct; rollback when the failed checks reach the threshold."""
    return _periodic(tr, interval, lambda ok, nreq: ok * 100.0 < min_success_pct * nreq, threshold)


def argo(tr: Traffic, interval: int = 60, failure_limit: int = 3, min_success: float = 0.99) -> np.ndarray:
    """Argo Rollouts: a measurement per interval fails when success < min_success; the analysis
    fails (rollback) when failed measurements exceed failureLimit."""
    return _periodic(tr, interval, lambda ok, nreq: ok < min_success * nreq, failure_limit + 1)


def _periodic(tr: Traffic, interval: int, failed, limit: int) -> np.ndarray:
    ends = np.arange(interval - 1, tr.n_c.shape[1], interval)
    n_c = np.diff(np.concatenate([np.zeros((len(tr.n_c), 1), np.int64), tr.n_c[:, ends]], axis=1))
    e_c = np.diff(np.concatenate([np.zeros((len(tr.e_c), 1), np.int64), tr.e_c[:, ends]], axis=1))
    fails = failed(n_c - e_c, n_c) | (n_c == 0)      # no data is a failed check in both tools
    return first_true(fails.cumsum(axis=1) >= limit, ends + 1)


def summarize(tr: Traffic, rollback: np.ndarray, ends: np.ndarray, users_see: bool = True) -> dict:
    """`ends` is when the judge ended the step (rollback, promote or pause; NEVER: ran to the horizon)."""
    horizon = tr.e_c.shape[1]
    rows = np.arange(len(rollback))
    bad = lambda t: tr.e_c[rows, np.minimum(t, horizon) - 1] if users_see else np.zeros(len(t))  # noqa: E731
    detected = rollback < NEVER
    return {
        "runs": int(len(rollback)),
        "bad_answers_mean": round(float(bad(ends).mean()), 2),
        "bad_answers_se": round(float(bad(ends).std() / math.sqrt(len(ends))), 2),
        "bad_answers_until_rollback_mean": round(float(bad(rollback).mean()), 2),
        "detect_seconds_mean": round(float(rollback[detected].mean()), 1) if detected.any() else None,
        "detect_rate": round(float(detected.mean()), 4),
    }


def canary_window(tr: Traffic, rho: float, r: int, t: int) -> Window:
    return Window(rho, float(t), TrackCounts(int(tr.n_s[r, t - 1]), int(tr.e_s[r, t - 1])),
                  TrackCounts(int(tr.n_c[r, t - 1]), int(tr.e_c[r, t - 1])))


def shadow_window(tr: Traffic, rho: float, r: int, t: int) -> Window:
    pairs = int(tr.n_c[r, t - 1])
    return Window(0.0, float(t), TrackCounts(pairs, 0), TrackCounts(),
                  ShadowCounts(pairs, int(tr.e_c[r, t - 1]), int(tr.e_s[r, t - 1])))


def cross_check(tr: Traffic, cfg: AnalysisPolicy, rho: float, tick: int, out: Outcome, runs: int,
                phase: str = "canary") -> None:
    """The replica must take the real judge's first decision at the same tick."""
    make = canary_window if phase == "canary" else shadow_window
    expected = {Decision.ROLLBACK: out.rollback, Decision.PROMOTE: out.promote, Decision.PAUSE: out.pause}
    for r in range(min(runs, len(out.rollback))):
        first = min(int(v[r]) for v in expected.values())
        for t in range(tick, tr.n_c.shape[1] + 1, tick):
            d = evaluate([make(tr, rho, r, t)], cfg, phase=phase).decision
            if phase == "shadow" and d == Decision.PROMOTE:
                d = Decision.CONTINUE          # the shadow replica judges rollbacks only
            if d in expected or t >= first:
                if not (d in expected and expected[d][r] == t == first):
                    raise AssertionError(f"replica differs from evaluate(): run {r} tick {t}: {d}, "
                                         f"replica first={first}")
                break


def canary_scenario(name: str, p0: float, p1: float, args, cfg: AnalysisPolicy, runs: int, rng) -> list[dict]:
    rho, rps = args.share, args.rps
    tr = simulate_canary(p0, p1, rho, rps, runs, args.horizon, rng)
    out = relctl_canary(tr, cfg, rho, args.tick)
    cross_check(tr, cfg, rho, args.tick, out, args.check_runs)
    ends = np.minimum(np.minimum(out.rollback, out.promote), out.pause)
    base = {"name": name, "p0": p0, "p1": p1, "canary_share": rho, "rps": rps}
    rows = [{**base, "judge": "relctl", **summarize(tr, out.rollback, ends),
             "promoted_rate": round(float((out.promote < np.minimum(out.rollback, out.pause)).mean()), 4),
             "paused_rate": round(float((out.pause < np.minimum(out.rollback, out.promote)).mean()), 4)}]
    for judge, rollback in (("flagger", flagger(tr)), ("argo", argo(tr))):
        rows.append({**base, "judge": judge, **summarize(tr, rollback, rollback)})
    for row in rows:
        row["false_rollback_rate"] = round(row["detect_rate"], 4) if p1 <= p0 else None
    return rows


def shadow_scenario(name: str, p0: float, p1: float, args, cfg: AnalysisPolicy, runs: int, rng) -> list[dict]:
    tr, both = simulate_shadow(p0, p1, args.rps, runs, args.horizon, rng)
    out = relctl_shadow(tr, cfg, args.tick)
    cross_check(tr, cfg, 0.5, args.tick, out, args.check_runs, phase="shadow")
    base = {"name": name, "p0": p0, "p1": p1, "canary_share": 0.0, "rps": args.rps}
    # Flagger with traffic mirroring judges the candidate's success rate on the mirrored copies.
    mirrored = Traffic(tr.n_c, tr.e_c + both, tr.n_s, tr.e_s + both)
    rollback = flagger(mirrored)
    rows = [{**base, "judge": "relctl-paired", **summarize(tr, out.rollback, out.rollback, users_see=False)},
            {**base, "judge": "flagger-mirror", **summarize(mirrored, rollback, rollback, users_see=False)}]
    for row in rows:
        row["false_rollback_rate"] = round(row["detect_rate"], 4) if p1 <= p0 else None
    return rows


def relctl_schedule(p0: float, p1: float, args, cfg: AnalysisPolicy, runs: int, rng) -> dict:
    """The whole canary schedule (`--steps`, each at least `--step-seconds`), as the controller runs
    it: a step ends when the judge says promote after the step's time; evidence against the
    candidate carries over (products of e-values across windows), acceptance is per window.
    Simulated second by second for all runs at once; the first `--check-runs` runs are replayed
    through the real `evaluate()` and must get the same verdict at every tick."""
    steps = np.array(args.steps) / 100.0
    spec = canary_metrics([Window(steps[0], 0, TrackCounts(), TrackCounts())], cfg)[0].spec
    thresholds = exact.step_thresholds(steps[0], spec, cfg.later_step_threshold_factor)
    accept_bound = sprt.log_accept_bound(spec.alpha, cfg.beta)
    step = np.zeros(runs, np.int64)
    running = np.ones(runs, bool)
    outcome = np.full(runs, "horizon", dtype=object)
    ended = np.full(runs, NEVER, np.int64)
    bad = np.zeros(runs, np.int64)
    carried = np.zeros((3, runs))                  # the count test's three parts, closed windows
    carried_srm = np.zeros(runs)
    win = {k: np.zeros(runs, np.int64) for k in ("n_c", "e_c", "n_s", "e_s", "t")}
    checked = min(args.check_runs, runs)
    replay = [[] for _ in range(checked)]          # per checked run: (windows so far, replica's verdict)
    closed = [[] for _ in range(checked)]          # per checked run: finished windows
    for t in range(1, args.horizon + 1):
        rho = steps[step]
        n_c = rng.binomial(args.rps, rho) * running
        n_s = (args.rps - n_c) * running
        e_c, e_s = rng.binomial(n_c, p1), rng.binomial(n_s, p0)
        for k, v in (("n_c", n_c), ("e_c", e_c), ("n_s", n_s), ("e_s", e_s), ("t", running.astype(np.int64))):
            win[k] += v
        bad += e_c
        parts = error_label.window_logs(win["e_c"], win["e_s"], rho, spec)
        llr = parts[0]
        log_e = error_label.combine(carried + parts, spec)
        srm_bf = beta_mixture.log_bayes_factor_array(win["n_c"], win["n_s"], rho, cfg.srm_k0, one_sided=False)
        guard = ((win["n_c"] >= cfg.guard_min_requests) & (win["e_c"] > cfg.max_error_rate * win["n_c"])
                 & guard_test(win["e_c"], win["e_s"], rho, cfg))
        srm = carried_srm + srm_bf >= -math.log(cfg.srm_alpha)
        accepted = (llr <= accept_bound) & (win["e_c"] + win["e_s"] > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            ub = np.where(win["e_c"] < win["n_c"], betaincinv(win["e_c"] + 1, np.maximum(win["n_c"] - win["e_c"], 1),
                                                               1 - spec.alpha), 1.0)
        accepted |= (cfg.error_rate_tolerance > 0) & (ub <= cfg.error_rate_tolerance)
        ready = (win["n_c"] >= cfg.min_requests) & (win["t"] >= cfg.min_soak_seconds)
        threshold = np.log(np.where(step == 0, thresholds.first, thresholds.later))
        rollback = guard | (~srm & (log_e >= threshold))
        pause = ~guard & srm
        promote = ~rollback & ~pause & ready & accepted
        for r in range(checked):
            if running[r]:
                verdict = ("rollback" if rollback[r] else "pause" if pause[r] else
                           "promote" if promote[r] else "continue")
                current = Window(float(rho[r]), float(win["t"][r]), TrackCounts(int(win["n_s"][r]), int(win["e_s"][r])),
                                 TrackCounts(int(win["n_c"][r]), int(win["e_c"][r])))
                replay[r].append((closed[r] + [current], verdict))
        for name, mask in (("rolled_back", rollback), ("paused", pause)):
            hit = running & mask
            outcome[hit], ended[hit], running[hit] = name, t, False
        advance = running & promote & (win["t"] >= args.step_seconds)
        last = advance & (step == len(steps) - 1)
        outcome[last], ended[last], running[last] = "promoted", t, False
        nxt = advance & ~last
        for r in np.flatnonzero(nxt[:checked]):
            closed[r].append(replay[r][-1][0][-1])
        carried += np.where(nxt, parts, 0.0)
        carried_srm += np.where(nxt, srm_bf, 0.0)
        step += nxt
        for k in win:
            win[k] = np.where(nxt, 0, win[k])
        if not running.any():
            break
    for r, ticks in enumerate(replay):
        for tick, (windows, verdict) in enumerate(ticks, 1):
            real = evaluate(windows, cfg, phase="canary").decision.value
            if real != verdict:
                raise AssertionError(f"schedule replica differs from evaluate(): run {r} tick {tick}: "
                                     f"{real} vs {verdict}")
    rolled = outcome == "rolled_back"
    promoted = outcome == "promoted"
    return {"runs": runs, "bad_answers_mean": round(float(bad.mean()), 2),
            "detect_seconds_mean": round(float(ended[rolled].mean()), 1) if rolled.any() else None,
            "detect_rate": round(float(rolled.mean()), 4), "promoted_rate": round(float(promoted.mean()), 4),
            "promote_seconds_mean": round(float(ended[promoted].mean()), 1) if promoted.any() else None,
            "paused_rate": round(float((outcome == "paused").mean()), 4)}


def schedule_scenario(name: str, p0: float, p1: float, args, cfg: AnalysisPolicy, runs: int, rng) -> list[dict]:
    row = {"name": name, "p0": p0, "p1": p1, "canary_share": args.steps[0] / 100, "rps": args.rps,
           "judge": "relctl", "schedule": "/".join(f"{s:g}" for s in args.steps) + " %",
           **relctl_schedule(p0, p1, args, cfg, runs, rng)}
    row["false_rollback_rate"] = row["detect_rate"] if p1 <= p0 else None
    return [row]


def oracle_rows(args, rng) -> list[dict]:
    """The yardsticks, at the first step's share and the full alpha. 'wald-oracle': Wald's SPRT
    told the true effect, on the same error-label data, 1 s ticks, rejecting at 1/alpha as
    relctl's e-values do; 'sprt-exact': the same with its threshold lowered until its exact
    false-alarm probability is alpha. 'sprt-floor': that test checked after every error and
    without a horizon (computed, not simulated): no test on the error labels, i.e. against
    the live stable, does better on average (Wald-Wolfowitz). 'sprt-floor-known-p0': the
    same against the stable's true error rate, on the candidate's requests alone -- the
    issue's 'physical limit', which a canary cannot have (it compares with the live stable)."""
    rho, rows = args.steps[0] / 100, []
    for name, p0, p1 in (("canary 5x", 0.01, 0.05), ("canary 2x", 0.01, 0.02)):
        base = {"name": name, "p0": p0, "p1": p1, "canary_share": rho, "rps": args.rps, "false_rollback_rate": None}
        theta1 = sprt.theta_for_effect(rho, p1 / p0)
        floor = exact.sprt_floor(rho, theta1, args.alpha, 4000)
        tr = simulate_canary(p0, p1, rho, args.rps, args.oracle_runs, args.horizon, rng)
        idx = np.arange(args.tick - 1, args.horizon, args.tick)
        llr = sprt_llr(tr.e_c[:, idx], tr.e_s[:, idx], rho, theta1)
        for judge, threshold in (("wald-oracle", 1 / args.alpha), ("sprt-exact", floor.threshold)):
            rollback = first_true(llr >= math.log(threshold), idx + 1)
            rows.append({**base, "judge": judge, **summarize(tr, rollback, rollback), "threshold": round(threshold, 3)})
        errors_per_second = args.rps * (rho * p1 + (1 - rho) * p0)
        for judge, best, per_second in (
                ("sprt-floor", floor, errors_per_second),
                ("sprt-floor-known-p0", exact.sprt_floor(p0, p1, args.alpha, 8000), args.rps * rho)):
            bad = round(best.successes, 2)
            rows.append({**base, "judge": judge, "runs": None, "bad_answers_mean": bad,
                         "bad_answers_until_rollback_mean": bad,
                         "detect_seconds_mean": round(best.draws / per_second, 1),
                         "detect_rate": round(best.power, 4), "threshold": round(best.threshold, 3),
                         "false_alarm_exact": round(best.false_alarm, 4)})
    return rows


def exact_false_rollback(cfg: AnalysisPolicy, rho: float) -> dict:
    """relctl's first-step rule checked after every error, A/A: its exact false-rollback
    probability (within 4,000 errors, and a bound on ever), at Ville's 1/alpha and at the
    calibrated first-step threshold; and the bound for the whole canary."""
    metric = canary_metrics([Window(rho, 0, TrackCounts(), TrackCounts())], cfg)[0]
    out = {"alpha": metric.spec.alpha, "first_step_threshold": round(metric.threshold, 3),
           "later_steps_threshold": round(exact.step_thresholds(rho, metric.spec, cfg.later_step_threshold_factor)
                                          .later, 3)}
    for name, threshold in (("ville", 1 / metric.spec.alpha), ("calibrated", metric.threshold)):
        within, ever = exact.false_alarm(rho, metric.spec, 4000, threshold)
        out[name] = {"within_4000_errors": round(within, 4), "ever_at_most": round(ever, 4)}
    return out


SCENARIOS = [
    ("canary 5x", "canary", 0.01, 0.05, "runs"),
    ("canary 2x", "canary", 0.01, 0.02, "runs"),
    ("canary A/A", "canary", 0.01, 0.01, "aa_runs"),
    ("shadow 5x", "shadow", 0.01, 0.05, "runs"),
    ("shadow A/A", "shadow", 0.01, 0.01, "aa_runs"),
    ("schedule 5x", "schedule", 0.01, 0.05, "runs"),
    ("schedule 2x", "schedule", 0.01, 0.02, "runs"),
    ("schedule A/A", "schedule", 0.01, 0.01, "aa_runs"),
]


def analysis_policy(args) -> AnalysisPolicy:
    """The judge's policy: the defaults, alpha, and each --set FIELD=VALUE (validated by pydantic)."""
    return AnalysisPolicy(alpha=args.alpha, **dict(item.split("=", 1) for item in args.set))


def run(args) -> dict:
    cfg = analysis_policy(args)
    rng = np.random.default_rng(args.seed)
    rows = []
    kinds = {"canary": canary_scenario, "shadow": shadow_scenario, "schedule": schedule_scenario}
    for name, kind, p0, p1, runs_attr in ([] if args.real_only else SCENARIOS):
        rows += kinds[kind](name, p0, p1, args, cfg, getattr(args, runs_attr), rng)
    rows += [] if args.real_only else oracle_rows(args, rng)
    real = [] if args.no_real else real_traffic.run(args, cfg, rng)
    exceedance = None if args.no_real else real_traffic.threshold_exceedance(np.random.default_rng(args.seed))
    exact_aa = exact_false_rollback(cfg, args.steps[0] / 100)
    settings = {"alpha": cfg.alpha, "shadow_alpha": cfg.shadow_alpha, "min_effect": cfg.min_effect,
                "mixture_k0": cfg.mixture_k0, "sprt_weight": cfg.sprt_weight,
                "large_effect_factor": cfg.large_effect_factor, "large_effect_weight": cfg.large_effect_weight,
                "tick_seconds": args.tick,
                "horizon_seconds": args.horizon, "oracle_runs": args.oracle_runs,
                "min_soak_seconds": cfg.min_soak_seconds, "seed": args.seed,
                "schedule_steps_pct": args.steps, "schedule_step_seconds": args.step_seconds,
                "cross_checked_runs_per_scenario": args.check_runs}
    settings.update(real_traffic_tick_seconds=args.real_tick, real_traffic_runs=args.real_runs,
                    real_traffic_aa_runs=args.real_aa_runs)
    return {"scenarios": rows, "real_traffic": real, "latency_threshold_exceedance": exceedance,
            "exact_false_rollback": exact_aa, "settings": settings}


def print_real_traffic(rows: list[dict], settings: dict, exceedance: dict | None = None) -> None:
    print_exceedance(exceedance)
    if not rows:
        return
    cols = ["name", "unit", "runs", "false_rollback_rate", "rollback_rate", "srm_paused_rate", "paused_rate",
            "held_runs_rate", "promoted_rate", "promote_seconds_mean", "detect_seconds_mean", "bad_answers_mean",
            "promoted_within_announced_rate", "promoted_within_announced_se", "announced_seconds"]
    heads = ["real traffic", "unit", "runs", "false rb", "rolled back", "SRM paused", "paused", "held", "promoted",
             "promote s", "detect s", "bad", "in announced", "(se)", "announced s"]
    table = [heads] + [["-" if r.get(c) is None else str(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    print()
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    print(f"\nReal traffic: every tick ({settings['real_traffic_tick_seconds']} s) through the real Analyzer, "
          f"the whole {'/'.join(f'{x:g}' for x in settings['schedule_steps_pct'])} % schedule (steps of at least "
          f"{settings['schedule_step_seconds']} s), 600 s horizon (2,400 s at low traffic, judged in shadow as "
          f"relctl's plan says). 'held': runs with at least one HOLD verdict. '{real_traffic.LOOP_NAME}': whole "
          f"releases through the reconcile loop (tick {real_traffic.LOOP_TICK} s), each planned from its own "
          f"simulated last 600 s; 'promote s' is the time in shadow, 'announced s' the median announced time.")


def print_exceedance(ex: dict | None) -> None:
    """The stable's real exceedance rate over the thresholds the judge fixes, per kind and quantile."""
    if not ex:
        return
    print(f"\nLatency thresholds (the analyzer's fix_thresholds on {ex['samples']} stable requests, the gateway's "
          f"edges): the stable's true rate over each threshold")
    for key, v in ex["summary"].items():
        if isinstance(v, dict):
            print(f"  {key:9s} nominal {v['nominal']:.2%}: min {v['min']:.2%}, median {v['median']:.2%}, max "
                  f"{v['max']:.2%}; within 0.5-2x nominal {v['within_half_to_double']:.0%} of {v['scenarios']} "
                  f"scenarios ({v['beyond_last_edge']} past the last edge)")
        else:
            print(f"  {key}: {v}")


def print_table(result: dict) -> None:
    if not result["scenarios"]:
        print_real_traffic(result["real_traffic"], result["settings"], result["latency_threshold_exceedance"])
        return
    cols = ["name", "judge", "runs", "bad_answers_mean", "bad_answers_until_rollback_mean", "detect_seconds_mean",
            "detect_rate", "false_rollback_rate", "promoted_rate", "promote_seconds_mean"]
    heads = ["scenario", "judge", "runs", "bad (step end)", "bad (to rollback)", "detect s", "detect rate",
             "false rb", "promoted", "promote s"]
    table = [heads] + [["-" if r.get(c) is None else str(r.get(c)) for c in cols] for r in result["scenarios"]]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    s = result["settings"]
    print(f"\n100 req/s, canary share 5 %, alpha {s['alpha']} (shadow {s['shadow_alpha']}), relctl tick "
          f"{s['tick_seconds']} s, horizon {s['horizon_seconds']} s. 'bad (step end)': candidate errors until "
          f"the judge ends the step (rollback, promote or pause); 'bad (to rollback)': the canary stays at 5 % "
          f"until rollback or the horizon. Shadow: users see no candidate answer. 'schedule': the whole "
          f"{'/'.join(f'{x:g}' for x in s['schedule_steps_pct'])} % canary, steps of at least "
          f"{s['schedule_step_seconds']} s; bad answers until rollback, promotion or the horizon. 'wald-oracle': "
          f"an SPRT told the true effect, rejecting at 1/alpha like an e-value; 'sprt-exact': the same at the "
          f"threshold whose exact false-alarm probability is alpha; 'sprt-floor': that test computed exactly, "
          f"checked after every error, no horizon -- the floor for any test against the live stable; "
          f"'-known-p0': against the stable's true error rate, which a canary does not know.")
    x = result["exact_false_rollback"]
    print(f"relctl's thresholds: {x['first_step_threshold']} in the first step, {x['later_steps_threshold']} later "
          f"(1/alpha = {1 / x['alpha']:g}). Exact A/A false-rollback probability of the first step's rule, checked "
          f"after every error: {x['calibrated']['within_4000_errors']} within 4,000 errors (at 1/alpha it would be "
          f"{x['ville']['within_4000_errors']}); the whole canary's is at most alpha.")
    print_real_traffic(result["real_traffic"], result["settings"], result["latency_threshold_exceedance"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--runs", type=int, default=2000, help="runs per regression scenario")
    p.add_argument("--oracle-runs", type=int, default=20000, help="runs per simulated yardstick row")
    p.add_argument("--aa-runs", type=int, default=4000, help="runs per A/A scenario (>= 1000)")
    p.add_argument("--horizon", type=int, default=600, help="simulated seconds per run (10 one-minute checks)")
    p.add_argument("--tick", type=int, default=1, help="relctl judge tick, seconds")
    p.add_argument("--rps", type=int, default=100)
    p.add_argument("--share", type=float, default=0.05)
    p.add_argument("--steps", type=float, nargs="+", default=[5, 25, 50],
                   help="canary weights in %% for the schedule scenarios (the default policy's)")
    p.add_argument("--step-seconds", type=int, default=30, help="minimum seconds per canary step (default policy)")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="an analysis policy field for relctl's judge, e.g. --set sprt_weight=0.65 (repeatable)")
    p.add_argument("--check-runs", type=int, default=20, help="runs per scenario cross-checked against evaluate()")
    p.add_argument("--seed", type=int, default=20261125)
    p.add_argument("--real-runs", type=int, default=60, help="runs per real-traffic regression scenario")
    p.add_argument("--real-aa-runs", type=int, default=200, help="runs per real-traffic A/A scenario")
    p.add_argument("--real-tick", type=int, default=5, help="judge tick in the real-traffic scenarios, seconds")
    p.add_argument("--loop-runs", type=int, default=None,
                   help="healthy low-traffic releases replayed through the real reconcile loop (default: 150 when "
                        "a --real-only WORD selects 'low traffic 2 req/s, real loop', e.g. 'loop'; else none)")
    p.add_argument("--loop-faulty-runs", type=int, default=30, help="the same with a 5x error rate")
    p.add_argument("--no-real", action="store_true", help="skip the real-traffic scenarios")
    p.add_argument("--real-only", nargs="*", metavar="WORD",
                   help="only the real-traffic scenarios (those whose name contains a WORD, if given)")
    args = p.parse_args(argv)
    if any("=" not in item for item in args.set):
        p.error("--set takes FIELD=VALUE, e.g. --set sprt_weight=0.65")
    try:
        analysis_policy(args)
    except ValidationError as exc:
        p.error(f"--set: {exc}")
    if args.aa_runs < 1000:
        p.error("--aa-runs must be at least 1000 for a meaningful false-rollback rate")
    started = time.monotonic()
    result = run(args)
    result["settings"]["wall_seconds"] = round(time.monotonic() - started, 1)
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
