"""The paired quality gate's error rates (simulated) and its real figures on the tiny models.

Simulation: parent and build answer n items; a faithful build changes a fraction
`discordance` of the answers at random (half lost, half gained: true drop 0); a bad one
loses twice the limit on top of that (true drop 2× the limit).
false_fail_rate = P(gate does not pass | drop 0); false_pass_rate = P(gate passes | drop 2× limit),
with the policy's inconclusive rule.
Real: tiny Llama parents (quantize/tiny_model.py) and their AutoAWQ builds, decided by the gate:
scored with the torch scorer on CPU (dequantized weights), or with `--on pool` through two vLLM
servers of a local pool, as `quality.evaluate_on: pool` does in a release. `demo` is the demo's
candidate (controller/demo/stack.py) quantized with policies/demo.yaml's settings.
    python bench/quality_gate.py [--suite builtin:large[,builtin:medium]] [--models v1,v2,demo]
                                 [--on cpu|pool] [--group-size N] [--calib-samples N] [--no-real] [--json]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from policies.schema import QualityGate  # noqa: E402
from quantize.paired import decide, drop_bounds  # noqa: E402

MODELS = {"v1": {"train_steps": 200, "seed": 0}, "v2": {"train_steps": 100, "seed": 1, "init_from": "v1"},
          "demo": {}}   # the demo's own v2 (controller/demo/stack.py), cached where the demo keeps it


def simulate(n: int, discordance: float, true_drop: float, quality: QualityGate, runs: int, seed: int) -> dict:
    """Share of runs ending pass / fail / inconclusive (true_drop in points)."""
    p_lost, p_gained = discordance / 2 + true_drop / 100, discordance / 2
    counts = np.random.default_rng(seed).multinomial(n, [p_lost, p_gained, 1 - p_lost - p_gained], size=runs)
    lower, upper = drop_bounds(n, counts[:, 0], counts[:, 1], quality.confidence)
    verdicts = decide(lower * 100, upper * 100, quality.max_accuracy_drop_pct)
    return {v: float(np.mean(verdicts == v)) for v in ("pass", "fail", "inconclusive")}


def error_rates(n: int, discordance: float, quality: QualityGate, runs: int) -> dict:
    limit = quality.max_accuracy_drop_pct
    good, bad = simulate(n, discordance, 0.0, quality, runs, 1), simulate(n, discordance, 2 * limit, quality, runs, 2)
    at_limit = simulate(n, discordance, limit, quality, runs, 3)
    passes_inconclusive = quality.on_inconclusive == "pass"
    lenient = (lambda r: r["pass"] + r["inconclusive"]) if passes_inconclusive else (lambda r: r["pass"])
    return {"items": n, "discordance": discordance, "false_fail_rate": 1 - lenient(good),
            "false_pass_rate": lenient(bad), "pass_rate_at_limit": lenient(at_limit)}


def spec_for(name: str, group_size: int | None, calib_samples: int | None):
    """The quantize settings: policies/demo.yaml's for the demo's model, the defaults otherwise."""
    from dataclasses import replace

    from policies.loader import load_policy
    from quantize.base import QuantizeSpec, spec_from_policy
    spec = spec_from_policy(load_policy("demo").quantize) if name == "demo" else QuantizeSpec()
    overrides = {k: v for k, v in (("group_size", group_size), ("max_calib_samples", calib_samples)) if v}
    return replace(spec, **overrides)


def parent_of(cache: Path, name: str) -> Path:
    from quantize.tiny_model import cached_tiny_llama
    if name == "demo":
        from controller.demo.stack import build_demo_models
        return build_demo_models()[1]
    kw = dict(MODELS[name])
    if "init_from" in kw:
        kw["init_from"] = parent_of(cache, kw["init_from"])
    return cached_tiny_llama(cache, f"tiny-{name}", **kw)


def build_pair(cache: Path, name: str, spec) -> tuple[Path, Path, float]:
    """(parent, AWQ build, quantization seconds or NaN when cached), the build cached in `cache`."""
    from quantize.job import run_quantize_job

    parent = parent_of(cache, name)
    out = cache / (f"build-{name}" if name != "demo" else f"build-demo-{spec.label()}-c{spec.max_calib_samples}")
    if not (out / "config.json").is_file():
        return parent, out, run_quantize_job(parent, out, spec, backend="autoawq",
                                             timeout_s=1800, max_memory_gb=16).seconds
    return parent, out, float("nan")


@contextmanager
def served(on: str, parent: Path, build: Path):
    """None for CPU scoring; for `pool`, parent and build served by a local vLLM pool (as in a release:
    controller/reconcile/evaluation_servers.py) until the block ends. Yields (pair, start seconds)."""
    if on == "cpu":
        yield None, 0.0
        return
    from controller.reconcile.evaluation_servers import served_pair
    from tests.support.pool import make_local_pool

    with tempfile.TemporaryDirectory(prefix="relctl-bench-pool-") as workdir:
        pool = make_local_pool(Path(workdir))
        started = time.monotonic()
        try:
            with served_pair(pool, "tiny-chat", "bench", parent, build, timeout_s=900) as pair:
                yield pair, time.monotonic() - started
        finally:
            pool.stop_all()


def real(cache: Path, name: str, quality: QualityGate, suites: list[str], on: str, spec) -> list[dict]:
    """One row per suite: both models scored on it, decided by the gate."""
    from quantize.gate import check_gate, paired_from_report
    from quantize.paired import decision
    from quantize.report import quality_report

    parent, build, quantize_seconds = build_pair(cache, name, spec)
    rows = []
    with served(on, parent, build) as (pair, start_seconds):
        for suite in suites:
            gate = quality.model_copy(update={"suite": suite})
            started = time.monotonic()
            report = quality_report(parent, build, eval_set=suite, served=pair)
            seconds = time.monotonic() - started
            drop = paired_from_report(report, gate.confidence)
            ok, reason = check_gate(report, gate)
            rows.append({
                "model": f"tiny-{name}", "build": spec.label(), "calib_samples": spec.max_calib_samples,
                "suite": suite, "evaluated_on": report.evaluated_on, "items": drop.items,
                "drop_pct": round(drop.drop_pct, 3), "ci": [round(drop.ci_low_pct, 3), round(drop.ci_high_pct, 3)],
                "decision": decision(drop, gate.max_accuracy_drop_pct), "gate_passed": ok,
                "lost": drop.parent_only, "gained": drop.build_only,
                "discordance": round((drop.parent_only + drop.build_only) / drop.items, 5),
                "parent_accuracy": report.parent_accuracy, "build_accuracy": report.build_accuracy,
                "perplexity_increase_pct": round(report.perplexity_increase_pct, 3),
                "seconds": round(seconds, 1), "server_start_seconds": round(start_seconds, 1),
                "quantize_seconds": None if math.isnan(quantize_seconds) else round(quantize_seconds, 1),
                "reason": reason})
    return rows


def items_needed(lost: int, gained: int, items: int, quality: QualityGate, runs: int,
                 sizes=(500, 1000, 1500, 2000, 2500, 3000, 4000, 6000)) -> list[dict]:
    """Share of gates passing at each suite size, answers lost and gained at the measured rates."""
    out = []
    for n in sizes:
        counts = np.random.default_rng(4).multinomial(n, [lost / items, gained / items,
                                                          1 - (lost + gained) / items], size=runs)
        lower, upper = drop_bounds(n, counts[:, 0], counts[:, 1], quality.confidence)
        verdicts = decide(lower * 100, upper * 100, quality.max_accuracy_drop_pct)
        out.append({"items": n, "pass_rate": float(np.mean(verdicts == "pass")),
                    "median_upper_pct": round(float(np.median(upper)) * 100, 3)})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="builtin:large",
                        help="suite(s), comma-separated: the first sets the simulated size, each is scored")
    parser.add_argument("--discordance", type=float, default=0.05,
                        help="share of answers a faithful build changes at random")
    parser.add_argument("--runs", type=int, default=20000)
    parser.add_argument("--models", default="v1,v2", help="v1, v2 (bench models) and/or demo (the demo's)")
    parser.add_argument("--on", choices=("cpu", "pool"), default="cpu",
                        help="score on CPU (dequantized) or through vLLM servers of a local pool")
    parser.add_argument("--group-size", type=int, help="override the build's AWQ group size")
    parser.add_argument("--calib-samples", type=int, help="override the build's calibration samples")
    parser.add_argument("--no-real", action="store_true", help="simulation only")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "relctl-bench-models")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from quantize.suites import load_suite

    suites = [s.strip() for s in args.suite.split(",") if s.strip()]
    quality = QualityGate(suite=suites[0])
    n = len(load_suite(suites[0]).items)
    rates = error_rates(n, args.discordance, quality, args.runs)
    others = [error_rates(k, args.discordance, quality, args.runs) for k in (121, 1000, 3000) if k != n]
    models = [] if args.no_real else [
        row for m in args.models.split(",") if m.strip()
        for row in real(args.cache, m.strip(), quality, suites, args.on,
                        spec_for(m.strip(), args.group_size, args.calib_samples))]
    for row in models:   # what suite size decides a build like this one, by simulation
        row["items_needed"] = items_needed(row["lost"], row["gained"], row["items"], quality, args.runs)
    if args.json:
        print(json.dumps({**rates, "confidence": quality.confidence, "limit_pct": quality.max_accuracy_drop_pct,
                          "runs": args.runs, "other_sizes": others, "models": models}))
        return 0
    print(f"limit {quality.max_accuracy_drop_pct} points, confidence {quality.confidence}, "
          f"discordance {args.discordance:.1%}, {args.runs} simulated gates per row")
    for row in [rates, *others]:
        print(f"  {row['items']:>6} items: false fail {row['false_fail_rate']:.2%}  false pass "
              f"{row['false_pass_rate']:.3%}  (passes at exactly the limit: {row['pass_rate_at_limit']:.2%})")
    for m in models:
        print(f"  {m['model']} {m['build']} on {m['suite']} ({m['evaluated_on']}): {m['items']} items, drop "
              f"{m['drop_pct']:+.2f} points, CI {m['ci']}, {m['decision']} ({m['lost']} lost, {m['gained']} gained), "
              f"{m['seconds']} s scoring, {m['server_start_seconds']} s server start")
        print("    passes at the measured rates: " + ", ".join(
            f"{r['items']} items {r['pass_rate']:.1%}" for r in m["items_needed"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
