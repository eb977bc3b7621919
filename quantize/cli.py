"""The quantize stage on its own: quantize a checkpoint folder, report its quality, apply the gate.

The lead's `relctl quantize MODEL VERSION --backend ...` resolves MODEL VERSION to a local
folder and calls run_quantize_command; `python -m quantize.cli DIR` does the same for a folder.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

from policies.schema import QualityGate, QuantizePolicy
from quantize.base import spec_from_policy
from quantize.errors import QuantizeError
from quantize.gate import check_gate
from quantize.job import run_quantize_job
from quantize.report import quality_report


def run_quantize_command(model_dir: Path, out_dir: Path | None = None, *, backend: str | None = None,
                         quantize_policy: QuantizePolicy | None = None, quality: QualityGate | None = None,
                         tracking_uri: str | None = None, on_progress: Callable[[dict], None] | None = None,
                         cancel: threading.Event | None = None) -> dict[str, Any]:
    """Quantize, evaluate and gate one build; returns a JSON-ready dict. Raises QuantizeError on bad input."""
    qp = quantize_policy or QuantizePolicy()
    gate_policy = quality or QualityGate()
    backend = backend or qp.backend
    model_dir = Path(model_dir)
    out_dir = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="relctl-quant-")) / f"{model_dir.name}-awq"
    job = run_quantize_job(model_dir, out_dir, spec_from_policy(qp), backend=backend, timeout_s=qp.timeout_seconds,
                           max_memory_gb=qp.max_memory_gb, on_progress=on_progress, cancel=cancel,
                           tracking_uri=tracking_uri)
    report = quality_report(model_dir, job.build_dir, quantization_seconds=job.seconds,
                            peak_memory_mb=job.peak_memory_mb)
    ok, reason = check_gate(report, gate_policy)
    run_id = None
    if tracking_uri:
        from quantize.mlflow_log import log_quantization_run

        run_id = log_quantization_run(tracking_uri, report, job, job.build_dir, tags={"relctl.gate": reason[:250]})
    return {"build_dir": str(job.build_dir), "backend": backend, "spec": job.result.spec.to_dict(),
            "report": report.to_dict(), "gate": {"passed": ok, "reason": reason}, "mlflow_run_id": run_id}


def _print_progress(event: dict) -> None:
    if event.get("event") == "layer_done":
        print(f"  {event['stage']}: layer {event['layer'] + 1}/{event['total']} done", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quantize.cli", description="Quantize a checkpoint folder.")
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--backend", default=None, help="autoawq | llmcompressor")
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        result = run_quantize_command(args.model_dir, args.out, backend=args.backend, tracking_uri=args.tracking_uri,
                                      on_progress=_print_progress)
    except QuantizeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0 if result["gate"]["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
