"""Each active release reconciled on its own: a slow or failing release never delays another.

The scheduler calls `tick()` every few seconds; it hands each release that needs a look to
a thread pool, skipping releases whose previous tick is still running. Long work is never
inside a tick (it runs as jobs), so a tick is short and one worker per release is plenty.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from controller import observability as obs
from controller.domain.phase_table import TERMINAL
from controller.reconcile.context import Controller
from controller.reconcile.loop import reconcile

log = logging.getLogger(__name__)


class ReleaseWorkers:
    def __init__(self, ctx: Controller, max_workers: int = 8, is_leader: Callable[[], bool] = lambda: True):
        self.ctx, self.is_leader = ctx, is_leader
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="reconcile")
        self._busy: set[str] = set()
        self._lock = threading.Lock()

    def tick(self) -> int:
        """Start a reconcile for every release that needs one and is not being reconciled; returns how many.
        A replica that does not hold the leader lease acts on nothing."""
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
        """Reconcile one release now (e.g. right after a user action), unless it already is.
        `known_version`: its row version as just read by the tick (spares a query per release)."""
        with self._lock:
            if release_id in self._busy:
                return False
            self._busy.add(release_id)
        self._pool.submit(self._run, release_id, known_version)
        return True

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
            with self._lock:
                self._busy.discard(release_id)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.ctx.store.flush_figures(older_than=0)
