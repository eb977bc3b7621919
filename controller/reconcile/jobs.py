"""Run long work (quantization, served evaluation, downloads) beside the ticks, never inside them.

A tick calls `ensure` and returns at once; the work runs in a thread of this process and
writes its progress and outcome into the jobs table, which later ticks observe. A job left
`running` by a process that is gone (a crash) is started again by the next tick that asks
for it. `cancel` stops a release's work at once: the work gets a cancel event (the quantize
subprocess is killed on it, evaluation servers are stopped) and its outcome is discarded.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from datetime import datetime
from typing import Any, Callable

from controller.store.jobs import CANCELLED, FAILED, RUNNING, SUCCEEDED, Job, JobStore, job_id

log = logging.getLogger(__name__)


class Cancelled(Exception):
    """The job's release was aborted, paused or timed out."""


class JobContext:
    """Handed to the work: report progress, and notice a cancel."""

    def __init__(self, runner: "JobRunner", job: Job, cancel: threading.Event):
        self._runner, self._job, self.cancel = runner, job, cancel
        self._progress: dict[str, Any] = {}

    def progress(self, **fields: Any) -> None:
        """Merge `fields` into the job's progress. A new `step` or `detail` starts a new sub-step:
        its counts are dropped and `started_at` is set, so views show how long it has run."""
        now = self._runner.clock()
        new_step = "step" in fields and fields["step"] != self._progress.get("step")
        if new_step or ("detail" in fields and fields["detail"] != self._progress.get("detail")):
            kept = {} if new_step or "step" not in self._progress else {"step": self._progress["step"]}
            self._progress = {**kept, "started_at": now.isoformat()}
        self._progress = {**self._progress, **fields}
        self._runner.store.update(self._job.id, self._job.attempt, now, progress=self._progress)

    def check(self) -> None:
        if self.cancel.is_set():
            raise Cancelled(f"{self._job.kind} cancelled")


Work = Callable[[JobContext], dict[str, Any]]


def throttled(report: Callable[[int, int], None], seconds: float = 1.0,
              clock: Callable[[], float] = time.monotonic) -> Callable[[int, int], None]:
    """`report(done, total)` at most once per `seconds` (the first and the last call always pass):
    per-item progress must not write the store per item."""
    last: list[float] = []

    def maybe(done: int, total: int) -> None:
        now = clock()
        if not last or done >= total or now - last[0] >= seconds:
            last[:] = [now]
            report(done, total)
    return maybe


class JobRunner:
    def __init__(self, store: JobStore, clock: Callable[[], datetime], owner: str | None = None):
        self.store, self.clock = store, clock
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._threads: dict[str, tuple[threading.Thread, threading.Event]] = {}
        self._lock = threading.Lock()

    def ensure(self, release_id: str, kind: str, work: Work, retry_failed_after: float | None = None) -> Job:
        """The job's state; started if it never ran, was cancelled, or was left running by a dead process.

        A failed job stays failed (its release decides what follows) unless `retry_failed_after`
        seconds are given: then it is started again that long after it failed (transient errors).
        """
        with self._lock:
            job = self.store.get(release_id, kind)
            if job is not None and job.state == SUCCEEDED:
                return job
            if job is not None and job.state == FAILED and not self._retry_due(job, retry_failed_after):
                return job
            if job is not None and job.state == RUNNING and self._alive(job.id):
                return job
            if job is not None and job.state == RUNNING:
                log.warning("job.restart", extra={"job": job.id, "owner": job.owner, "attempt": job.attempt})
            job = self.store.start(release_id, kind, self.owner, self.clock())
            cancel = threading.Event()
            thread = threading.Thread(target=self._run, args=(job, work, cancel), name=f"job-{job.id}", daemon=True)
            self._threads[job.id] = (thread, cancel)
            thread.start()
            return job

    def get(self, release_id: str, kind: str) -> Job | None:
        return self.store.get(release_id, kind)

    def cancel(self, release_id: str) -> list[str]:
        """Stop every running job of the release now; returns the ids cancelled."""
        stopped = []
        for job in self.store.of_release(release_id):
            if job.state != RUNNING:
                continue
            with self._lock:
                entry = self._threads.get(job.id)
            if entry:
                entry[1].set()
            self.store.update(job.id, job.attempt, self.clock(), state=CANCELLED, error="cancelled")
            stopped.append(job.id)
        return stopped

    def join(self, timeout: float) -> None:
        """Wait for the jobs running in this process (shutdown, tests)."""
        with self._lock:
            threads = [t for t, _ in self._threads.values()]
        for thread in threads:
            thread.join(timeout)

    def running_here(self) -> int:
        with self._lock:
            return sum(1 for t, _ in self._threads.values() if t.is_alive())

    def _retry_due(self, job: Job, after: float | None) -> bool:
        return after is not None and job.updated_at is not None and \
            (self.clock() - job.updated_at).total_seconds() >= after

    def _alive(self, key: str) -> bool:
        entry = self._threads.get(key)
        return entry is not None and entry[0].is_alive()

    def _run(self, job: Job, work: Work, cancel: threading.Event) -> None:
        ctx = JobContext(self, job, cancel)
        try:
            result = work(ctx)
            if cancel.is_set():
                raise Cancelled(f"{job.kind} cancelled")
            self.store.update(job.id, job.attempt, self.clock(), state=SUCCEEDED, result=result)
        except Cancelled as exc:
            self.store.update(job.id, job.attempt, self.clock(), state=CANCELLED, error=str(exc))
        except Exception as exc:  # the job fails with its cause; the release decides what follows
            log.exception("job.failed", extra={"job": job.id})
            self.store.update(job.id, job.attempt, self.clock(), state=FAILED, error=str(exc) or type(exc).__name__,
                              result={"error_type": type(exc).__name__})
        finally:
            with self._lock:
                self._threads.pop(job.id, None)


__all__ = ["Cancelled", "JobContext", "JobRunner", "Work", "job_id", "throttled"]
