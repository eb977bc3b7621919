"""Shadow mirroring: a copy of the user's request goes to the mirror track, off the hot path.

The user's handler only does a put_nowait on a bounded queue; a full queue drops the copy
(and counts it). Workers send the copy, wait for the live answer, and compare the pair.
Nothing a shadow does can delay or fail the user's request.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field, replace

import aiohttp

from controller.gateway.compare import Side, compare
from controller.gateway.exchange import Exchange, Outcome, execute, record
from controller.gateway.state import GatewayState

log = logging.getLogger(__name__)


@dataclass
class ShadowJob:
    exchange: Exchange
    live_track: str
    live: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def set_live(self, outcome: Outcome | None) -> None:
        if not self.live.done():
            self.live.set_result(outcome)


class ShadowMirror:
    def __init__(self, state: GatewayState):
        self._state = state
        self._queue: asyncio.Queue[ShadowJob] | None = None
        self._workers: list[asyncio.Task] = []
        self._session: aiohttp.ClientSession | None = None
        self.compared = 0

    async def start(self, session: aiohttp.ClientSession) -> None:
        cfg = self._state.config
        self._session = session
        self._queue = asyncio.Queue(maxsize=cfg.shadow_queue_size)
        self._workers = [asyncio.create_task(self._work(), name=f"shadow-{i}")
                         for i in range(cfg.shadow_workers)]

    async def stop(self) -> None:
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []

    def offer(self, live: Exchange) -> ShadowJob | None:
        """Queue a copy for the mirror track, or return None (no mirror, not sampled, dropped)."""
        route = live.route
        mirror = route.spec.mirror_to
        if mirror is None or mirror == live.target.track or self._queue is None:
            return None
        if route.spec.mirror_percent < 100 and random.random() * 100 >= route.spec.mirror_percent:
            return None
        job = ShadowJob(replace(live, target=route.targets[mirror], mode="shadow", started=0.0), live.target.track)
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            route.shadow_metrics.dropped.inc()
            return None
        return job

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await self._run(job)
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad pair must not stop the worker
                log.exception("shadow job failed", extra={"model": job.exchange.route.model})

    async def _run(self, job: ShadowJob) -> None:
        ex = job.exchange
        ex.started = time.perf_counter()
        _, shadow = await execute(ex, self._session)
        record(ex, shadow)
        live = await job.live     # always resolved: the user's handler sets it in a finally
        if live is None or 400 <= live.status < 500:
            return        # user left or sent a bad request: the pair says nothing about the tracks
        self._compare(job, live, shadow)

    def _compare(self, job: ShadowJob, live: Outcome, shadow: Outcome) -> None:
        sides = {live.track: _side(live), shadow.track: _side(shadow)}
        if set(sides) != {"stable", "candidate"}:
            return
        result = compare(sides["stable"], sides["candidate"])
        m = job.exchange.route.shadow_metrics
        m.pairs[result.outcome].inc()
        if result.exact:
            m.agreement["exact"].inc()
        if result.normalized:
            m.agreement["normalized"].inc()
        if result.candidate_slower:
            m.candidate_slower.inc()
        self.compared += 1


def _side(o: Outcome) -> Side:
    return Side(ok=o.ok, status=o.status, latency_s=o.latency_s, text=o.text,
                completion_tokens=o.completion_tokens)
