"""The quantization job's process: python -m quantize.worker --parent D --out D --backend B --spec JSON.

Stdout carries one JSON event per line (start, layer_start/layer_done, done, error) for the
parent to follow; everything else (library logs, tqdm) goes to stderr and into the job's log.
Kept free of any controller import so the same entry point can run as a Kubernetes Job.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from quantize.base import QuantizeSpec, get_backend
from quantize.calibration import calibration_texts, check_calibration_tokens
from quantize.errors import QuantizeError

EXIT_QUANTIZE_ERROR = 2
EXIT_CRASH = 3


_events = sys.stdout      # main() moves it off fd 1, so libraries that print cannot break the protocol


def emit(event: dict[str, Any]) -> None:
    event = {"ts": datetime.now(timezone.utc).isoformat(), **event}
    _events.write(json.dumps(event) + "\n")
    _events.flush()


def _keep_stdout_for_events() -> None:
    """Events get a private copy of stdout; fd 1 itself then points at stderr (llm-compressor logs to stdout)."""
    global _events
    sys.stdout.flush()
    _events = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def run(parent: Path, out: Path, backend_name: str, spec: QuantizeSpec) -> dict[str, Any]:
    from transformers import AutoTokenizer

    backend = get_backend(backend_name)
    texts = calibration_texts(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(parent))
    except Exception as exc:  # a broken tokenizer is a broken checkpoint
        raise QuantizeError(f"checkpoint {parent}: tokenizer cannot be loaded ({exc})", cause="checkpoint") from exc
    blocks = check_calibration_tokens(texts, tokenizer, spec)
    emit({"event": "start", "backend": backend_name, "spec": spec.to_dict(), "calibration_texts": len(texts),
          "calibration_blocks": blocks})
    out.mkdir(parents=True, exist_ok=True)
    result = backend.quantize(parent, out, spec, texts, emit)
    return result.to_dict()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quantize.worker")
    parser.add_argument("--parent", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--spec", required=True, help="QuantizeSpec as JSON")
    args = parser.parse_args(argv)
    _keep_stdout_for_events()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s")
    logging.Formatter.converter = time.gmtime  # UTC timestamps
    started = time.monotonic()
    try:
        result = run(args.parent, args.out, args.backend, QuantizeSpec.from_dict(json.loads(args.spec)))
    except QuantizeError as exc:
        emit({"event": "error", "cause": exc.cause, "message": str(exc)})
        return EXIT_QUANTIZE_ERROR
    except Exception as exc:  # report, then let the parent call it a crash
        emit({"event": "error", "cause": "crash", "message": f"{type(exc).__name__}: {exc}"})
        logging.exception("quantization failed")
        return EXIT_CRASH
    emit({"event": "done", "result": result, "seconds": round(time.monotonic() - started, 3),
          "peak_rss_mb": round(peak_rss_mb(), 1)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
