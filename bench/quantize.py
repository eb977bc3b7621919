"""Quantization cost and quality for tiny Llama models of growing size, on CPU.

For each size: build (or reuse) a briefly trained model, quantize it with the chosen backend
through the real job (subprocess), and evaluate the build against its parent.
    python bench/quantize.py [--sizes small,medium,large] [--backends autoawq,llmcompressor]
                             [--train-steps 200] [--json]
llmcompressor's worker runs in its own environment (RELCTL_QUANTIZE_PYTHON_LLMCOMPRESSOR,
set by `make bench`).
GPU serving throughput (AWQ vs fp16 in vLLM) is not measured here: this machine has no GPU.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from quantize.base import QuantizeSpec  # noqa: E402
from quantize.job import run_quantize_job  # noqa: E402
from quantize.report import quality_report  # noqa: E402
from quantize.tiny_model import cached_tiny_llama  # noqa: E402

SIZES = {
    "small": {"hidden_size": 256, "intermediate_size": 512, "num_layers": 2},
    "medium": {"hidden_size": 384, "intermediate_size": 768, "num_layers": 4},
    "large": {"hidden_size": 512, "intermediate_size": 1024, "num_layers": 6},
}
COLUMNS = [("size", "{}"), ("backend", "{}"), ("params_m", "{:.2f}"), ("quant_s", "{:.1f}"), ("peak_mb", "{:.0f}"),
           ("ppl_parent", "{:.3f}"), ("ppl_build", "{:.3f}"), ("ppl_incr_pct", "{:+.2f}"), ("acc_parent", "{:.3f}"),
           ("acc_build", "{:.3f}"), ("acc_drop_pts", "{:+.2f}"), ("size_x", "{:.2f}")]


def measure(name: str, cache: Path, train_steps: int, backend: str, spec: QuantizeSpec) -> dict:
    dims = SIZES[name]
    parent = cached_tiny_llama(cache, f"bench-{name}", train_steps=train_steps, **dims)
    out = Path(tempfile.mkdtemp(prefix="bench-q-")) / name
    try:
        job = run_quantize_job(parent, out, spec, backend=backend, timeout_s=1800, max_memory_gb=16)
        rep = quality_report(parent, job.build_dir, quantization_seconds=job.seconds, peak_memory_mb=job.peak_memory_mb)
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)
    h, i, n = dims["hidden_size"], dims["intermediate_size"], dims["num_layers"]
    params = n * (4 * h * h + 3 * h * i)  # the decoder's linear layers: what AWQ quantizes
    return {"size": name, "backend": backend, **dims, "params_m": params / 1e6, "quant_s": job.seconds,
            "peak_mb": job.peak_memory_mb,
            "ppl_parent": rep.parent_perplexity, "ppl_build": rep.build_perplexity,
            "ppl_incr_pct": rep.perplexity_increase_pct, "acc_parent": rep.parent_accuracy,
            "acc_build": rep.build_accuracy, "acc_drop_pts": rep.accuracy_drop_pct, "size_x": 1 / rep.weight_size_ratio}


def table(rows: list[dict]) -> str:
    lines = ["  ".join(f"{c:>12}" for c, _ in COLUMNS)]
    for row in rows:
        lines.append("  ".join(f"{fmt.format(row[c]):>12}" for c, fmt in COLUMNS))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="small,medium,large")
    parser.add_argument("--train-steps", type=int, default=200)
    parser.add_argument("--backends", default="autoawq", help="comma-separated: autoawq,llmcompressor")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "relctl-bench-models")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown sizes {unknown}; known: {', '.join(SIZES)}")
    spec = QuantizeSpec(max_calib_samples=32, max_calib_seq_len=128)
    started = time.monotonic()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    rows = [measure(s, args.cache, args.train_steps, b, spec) for s in sizes for b in backends]
    if args.json:
        print(json.dumps({"backends": backends, "spec": spec.to_dict(), "rows": rows,
                          "wall_s": round(time.monotonic() - started, 1)}))
    else:
        print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
