"""Runs one quantization as a child process with progress, a time limit, a memory guard and
cancellation. The build is written to a staging folder and renamed into place only on
success, so a failed or cancelled job never leaves a partial build behind.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Callable

import psutil

from quantize.base import QuantizeResult, QuantizeSpec, check_backend_name, get_backend, worker_python
from quantize.calibration import calibration_texts
from quantize.checkpoint import check_group_size, check_weights, read_config
from quantize.errors import QuantizeError
from quantize.mlflow_calibration import fetch, is_mlflow_reference

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parent.parent
POLL_S = 0.2
KILL_GRACE_S = 5.0


@dataclass
class QuantizeJobResult:
    result: QuantizeResult
    log_text: str
    seconds: float
    peak_memory_mb: float
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def build_dir(self) -> Path:
        return self.result.build_dir


def validate_inputs(parent_dir: Path, out_dir: Path, spec: QuantizeSpec, backend: str) -> None:
    """Everything that can be checked without loading the model, before a process is spawned."""
    check_backend_name(backend)
    config = read_config(parent_dir)
    get_backend(backend).check(config, spec)
    check_group_size(config, spec.group_size)
    check_weights(parent_dir)
    calibration_texts(spec)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise QuantizeError(f"output folder {out_dir} exists and is not empty", cause="output")


def run_quantize_job(parent_dir: Path, out_dir: Path, spec: QuantizeSpec, *, backend: str, timeout_s: float,
                     max_memory_gb: float, on_progress: Callable[[dict], None] | None = None,
                     cancel: threading.Event | None = None, tracking_uri: str | None = None) -> QuantizeJobResult:
    """`tracking_uri` is the MLflow server that calibration references (mlflow-dataset:, runs:/) point to."""
    parent_dir, out_dir = Path(parent_dir).resolve(), Path(out_dir).resolve()
    suffix = f"{os.getpid()}-{threading.get_ident()}"
    staging = out_dir.parent / f".{out_dir.name}.partial-{suffix}"
    downloads = out_dir.parent / f".{out_dir.name}.calibration-{suffix}"
    try:
        # The worker gets a local file; the result keeps the spec as asked (the MLflow reference).
        worker_spec = spec
        if is_mlflow_reference(spec.calibration):
            worker_spec = replace(spec, calibration=str(fetch(spec.calibration, downloads, tracking_uri)))
        validate_inputs(parent_dir, out_dir, worker_spec, backend)
        shutil.rmtree(staging, ignore_errors=True)
        staging.parent.mkdir(parents=True, exist_ok=True)
        cmd = [worker_python(backend), "-m", "quantize.worker", "--parent", str(parent_dir), "--out", str(staging),
               "--backend", backend, "--spec", json.dumps(worker_spec.to_dict())]
        log.info("quantize job starting", extra={"parent": str(parent_dir), "backend": backend, "spec": spec.label()})
        started = time.monotonic()
        watch = _Watch(_spawn(cmd), timeout_s, max_memory_gb, on_progress, cancel)
        try:
            done = watch.run()
            result = QuantizeResult.from_dict({**done["result"], "build_dir": str(out_dir), "spec": spec.to_dict()})
            if out_dir.exists():
                out_dir.rmdir()  # validated empty above
            os.replace(staging, out_dir)
        except QuantizeError as exc:
            exc.log_text = watch.log_text()  # the caller attaches it to the failed run
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(downloads, ignore_errors=True)
    seconds = round(time.monotonic() - started, 3)
    peak = max(watch.peak_rss_mb, float(done.get("peak_rss_mb", 0.0)))
    log.info("quantize job done", extra={"build": str(out_dir), "seconds": seconds, "peak_mb": round(peak, 1)})
    return QuantizeJobResult(result=result, log_text=watch.log_text(), seconds=seconds, peak_memory_mb=round(peak, 1),
                             events=watch.events)


def _spawn(cmd: list[str]) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)  # its own group, so a kill reaches its helpers too


class _Watch:
    """Follows the worker: parses its events, enforces the limits, keeps the log."""

    def __init__(self, proc: subprocess.Popen, timeout_s: float, max_memory_gb: float,
                 on_progress: Callable[[dict], None] | None, cancel: threading.Event | None) -> None:
        self.proc, self.timeout_s, self.max_mb = proc, timeout_s, max_memory_gb * 1024
        self.on_progress, self.cancel = on_progress, cancel
        self.lines: queue.Queue[tuple[str, str]] = queue.Queue()
        self.log_lines: list[str] = []
        self.events: list[dict[str, Any]] = []
        self.peak_rss_mb = 0.0
        for name, stream in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            threading.Thread(target=self._pump, args=(name, stream), daemon=True).start()

    def _pump(self, name: str, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put((name, line.rstrip("\n")))

    def run(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout_s
        while self.proc.poll() is None:
            self._drain()
            self._sample_memory()
            if self.cancel is not None and self.cancel.is_set():
                self._kill(QuantizeError("quantization cancelled", cause="cancelled"))
            if self.peak_rss_mb > self.max_mb:
                self._kill(QuantizeError(f"quantization exceeded the memory limit: {self.peak_rss_mb:.0f} MB > "
                                         f"{self.max_mb:.0f} MB", cause="memory"))
            if time.monotonic() > deadline:
                self._kill(QuantizeError(f"quantization timed out after {self.timeout_s:g} s", cause="timeout"))
            time.sleep(POLL_S)
        self.proc.wait()
        time.sleep(0.05)  # let the pump threads hand over the last lines
        self._drain()
        return self._outcome()

    def _drain(self) -> None:
        while True:
            try:
                stream, line = self.lines.get_nowait()
            except queue.Empty:
                return
            event = _parse_event(line) if stream == "stdout" else None
            if event is None:
                self.log_lines.append(line)
                continue
            self.events.append(event)
            self.log_lines.append(json.dumps(event))
            if self.on_progress is not None and event.get("event") not in ("done", "error"):
                self.on_progress(event)

    def _sample_memory(self) -> None:
        try:
            proc = psutil.Process(self.proc.pid)
            rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
        except psutil.Error:
            return
        self.peak_rss_mb = max(self.peak_rss_mb, rss / 2**20)

    def _kill(self, error: QuantizeError) -> None:
        log.warning("stopping quantize worker", extra={"cause": error.cause})
        for sig, grace in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        raise error

    def _outcome(self) -> dict[str, Any]:
        for event in reversed(self.events):
            if event.get("event") == "done" and self.proc.returncode == 0:
                return event
            if event.get("event") == "error":
                raise QuantizeError(event.get("message", "quantization failed"), cause=event.get("cause", "crash"))
        tail = "\n".join(self.log_lines[-15:])
        raise QuantizeError(f"quantization process crashed (exit code {self.proc.returncode}); last log lines:\n{tail}",
                            cause="crash")

    def log_text(self) -> str:
        return "\n".join(self.log_lines) + "\n"


def _parse_event(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) and "event" in event else None
