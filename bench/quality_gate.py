"""The paired quality gate's error rates (simulated) and its real figures on the tiny models.

Simulation: parent and build answer n items; a faithful build changes a fraction
`discordance` of the answers at random (half lost, half gained: true drop 0); a bad one
loses twice the limit on top of that (true drop 2× the limit).
false_fail_rate = P(gate does not pass | drop 0); false_pass_rate = P(gate passes | drop 2× limit),
with the policy's inconclusive rule.
Real: tiny Llama parents (quantize/tiny_model.py) and their AutoAWQ builds, scored with the
torch scorer on CPU on the suite, decided by the gate.
    python bench/quality_gate.py [--suite builtin:large] [--models v1,v2] [--no-real] [--json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from policies.schema import QualityGate  # noqa: E402
from quantize.paired import decide, drop_bounds  # noqa: E402

MODELS = {"v1": {"train_steps": 200, "seed": 0}, "v2": {"train_steps": 100, "seed": 1, "init_from": "v1"}}


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


def build_pair(cache: Path, name: str) -> tuple[Path, Path, float]:
    """(parent, AWQ build, quantization seconds), both cached in `cache`."""
    from quantize.base import QuantizeSpec
    from quantize.job import run_quantize_job
    from quantize.tiny_model import cached_tiny_llama

    kw = dict(MODELS[name])
    if "init_from" in kw:
        kw["init_from"] = build_pair(cache, kw["init_from"])[0]
    parent = cached_tiny_llama(cache, f"tiny-{name}", **kw)
    out = cache / f"build-{name}"
    if not (out / "config.json").is_file():
        return parent, out, run_quantize_job(parent, out, QuantizeSpec(), backend="autoawq",
                                             timeout_s=1800, max_memory_gb=16).seconds
    return parent, out, float("nan")


def real(cache: Path, name: str, quality: QualityGate) -> dict:
    from quantize.gate import check_gate, paired_from_report
    from quantize.paired import decision
    from quantize.report import quality_report

    parent, build, _ = build_pair(cache, name)
    started = time.monotonic()
    report = quality_report(parent, build, eval_set=quality.suite)
    seconds = time.monotonic() - started
    drop = paired_from_report(report, quality.confidence)
    ok, reason = check_gate(report, quality)
    return {"model": f"tiny-{name}", "items": drop.items, "drop_pct": round(drop.drop_pct, 3),
            "ci": [round(drop.ci_low_pct, 3), round(drop.ci_high_pct, 3)],
            "decision": decision(drop, quality.max_accuracy_drop_pct), "gate_passed": ok,
            "lost": drop.parent_only, "gained": drop.build_only,
            "parent_accuracy": report.parent_accuracy, "build_accuracy": report.build_accuracy,
            "perplexity_increase_pct": round(report.perplexity_increase_pct, 3),
            "seconds": round(seconds, 1), "reason": reason}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="builtin:large")
    parser.add_argument("--discordance", type=float, default=0.05,
                        help="share of answers a faithful build changes at random")
    parser.add_argument("--runs", type=int, default=20000)
    parser.add_argument("--models", default="v1,v2")
    parser.add_argument("--no-real", action="store_true", help="simulation only")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "relctl-bench-models")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from quantize.suites import load_suite

    quality = QualityGate(suite=args.suite)
    n = len(load_suite(args.suite).items)
    rates = error_rates(n, args.discordance, quality, args.runs)
    others = [error_rates(k, args.discordance, quality, args.runs) for k in (121, 1000, 3000) if k != n]
    models = [] if args.no_real else [real(args.cache, m.strip(), quality) for m in args.models.split(",") if m.strip()]
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
        print(f"  {m['model']}: {m['items']} items, drop {m['drop_pct']:+.2f} points, CI {m['ci']}, "
              f"{m['decision']} ({m['lost']} lost, {m['gained']} gained), {m['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
