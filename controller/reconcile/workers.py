"""Each active release reconciled on its own: a slow or failing release never delays another.

The scheduler calls `tick()` every second or so; it queues each release that needs a look,
skipping releases whose previous reconcile is queued or still running. Long work is never
inside a reconcile (it runs as jobs), so a reconcile is short -- a third of a millisecond of
CPU for a steady canary.

Why not a plain thread pool: under CPython's GIL, several threads running short CPU-bound
reconciles at once fight for the interpreter; at a thousand canaries eight such threads did
about half the reconciles per second of one (bench/controller_scale.py). So one worker runs
at a time, and the others stand by: when the running one has spent `slow_after_seconds` in
one release (a registry call that hangs, a slow pool), it no longer counts, and the next
worker takes the queue. A stuck release thus delays the others by at most that much, and
up to `max_workers` can be stuck at once.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from typing import Callable

from controller import observability as obs
from controller.domain.phase_table import TERMINAL
from controller.reconcile.context import Controller
from controller.reconcile.loop import reconcile

log = logging.getLogger(__name__)
SLOW_AFTER_SECONDS = 0.25


class ReleaseWorkers:
    def __init__(self, ctx: Controller, max_workers: int = 8, is_leader: Callable[[], bool] = lambda: True,
                 slow_after_seconds: float = SLOW_AFTER_SECONDS):
        self.ctx, self.is_leader, self.slow_after = ctx, is_leader, slow_after_seconds
        self._queue: deque[tuple[str, int | None]] = deque()
        self._busy: set[str] = set()                    # queued or running
        self._hurried: set[str] = set()                 # to be queued at the front when next kicked
        self._started: dict[int, float] = {}            # worker thread -> when its reconcile began
        lock = threading.Lock()
        self._cond = threading.Condition(lock)          # work queued, or a worker may take over
        self._idle = threading.Condition(lock)          # nothing queued or running (drain)
        self._stopping = False
        self._threads = [threading.Thread(target=self._work, name=f"reconcile-{i}", daemon=True)
                         for i in range(max_workers)]
        for t in self._threads:
            t.start()

    def tick(self) -> int:
        """Queue a reconcile for every release that needs one and is not queued or running; returns
        how many. A replica that does not hold the leader lease acts on nothing."""
        if not self.is_leader():
            return 0
        started = 0
        for release_id, version in self.ctx.store.to_reconcile().items():
            if self.kick(release_id, version):
                started += 1
        obs.RUNNING_JOBS.set(self.ctx.jobs.running_here())
        self.ctx.store.flush_figures()   # the judges' running figures, one transaction per tick
        return started

    def kick(self, release_id: str, known_version: int | None = None) -> bool:
        """Reconcile one release soon (e.g. right after a user action), unless it is queued or running.
        `known_version`: its row version as just read by the tick (spares a query per release)."""
        with self._cond:
            if release_id in self._busy or self._stopping:
                return False
            self._busy.add(release_id)
            if release_id in self._hurried:
                self._hurried.discard(release_id)
                self._queue.appendleft((release_id, known_version))
            else:
                self._queue.append((release_id, known_version))
            if len(self._queue) == 1:    # a worker that is running takes the rest without being woken
                self._cond.notify()
        return True

    def hurry(self, release_ids: set[str]) -> None:
        """Reconcile these before the others (new evidence arrived for them, e.g. candidate errors):
        moved to the front of the queue if queued, else queued at the front when next kicked."""
        with self._cond:
            front = [item for item in self._queue if item[0] in release_ids]
            if front:
                rest = [item for item in self._queue if item[0] not in release_ids]
                self._queue.clear()
                self._queue.extend(front + rest)
            if len(self._hurried) > 10_000:   # ids of releases that never came back (ended, another replica's)
                self._hurried.clear()
            self._hurried.update(release_ids - self._busy)

    def drain(self, timeout: float) -> bool:
        """Wait until nothing is queued or running (tests, shutdown); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def _work(self) -> None:
        me = threading.get_ident()
        while True:
            with self._cond:
                while not self._stopping and not (self._queue and self._running_quickly() == 0):
                    self._cond.wait(self.slow_after)   # re-checked: the running worker may be stuck by now
                if self._stopping:
                    return
                release_id, known_version = self._queue.popleft()
                self._started[me] = time.monotonic()
            try:
                self._run(release_id, known_version)
            finally:
                with self._cond:
                    del self._started[me]
                    self._busy.discard(release_id)
                    if not self._busy:
                        self._idle.notify_all()

    def _running_quickly(self) -> int:
        """Workers inside a reconcile that began less than slow_after ago (the others are stuck)."""
        now = time.monotonic()
        return sum(1 for began in self._started.values() if now - began < self.slow_after)

    def _run(self, release_id: str, known_version: int | None) -> None:
        started, ended = time.perf_counter(), False
        try:
            r = reconcile(self.ctx, release_id, known_version)
            ended = r.phase in TERMINAL and r.settled
        except Exception:
            obs.RECONCILE_ERRORS.inc()
            log.exception("reconcile.error", extra={"release": release_id})
        finally:
            seconds = time.perf_counter() - started
            obs.TICK_SECONDS.observe(seconds)
            if ended:        # an ended, settled release is not ticked again: drop its series
                with contextlib.suppress(KeyError):
                    obs.RELEASE_TICK_SECONDS.remove(release_id)
            else:
                obs.RELEASE_TICK_SECONDS.labels(release_id).set(seconds)

    def shutdown(self) -> None:
        """Stop taking work (queued reconciles are dropped; running ones finish on their own)."""
        with self._cond:
            self._stopping = True
            self._busy.difference_update(release_id for release_id, _ in self._queue)
            self._queue.clear()
            self._cond.notify_all()
        self.ctx.store.flush_figures(older_than=0)
