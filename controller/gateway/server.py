"""Assembling the gateway app, and running it in a background thread (tests, embedding)."""
from __future__ import annotations

import asyncio
import logging
import threading

import aiohttp
from aiohttp import web

from controller.gateway import admin, proxy
from controller.gateway.http_logging import quiet_malformed_requests
from controller.gateway.keys import SESSION, SHADOW, STATE
from controller.gateway.shadow import ShadowMirror
from controller.gateway.state import GatewayState

log = logging.getLogger(__name__)


def build_app(state: GatewayState) -> web.Application:
    quiet_malformed_requests()
    app = web.Application(client_max_size=16 * 1024**2)
    app[STATE] = state
    app[SHADOW] = ShadowMirror(state)
    proxy.add_routes(app)
    admin.add_routes(app)
    app.on_startup.append(_start_background)
    app.on_cleanup.append(_stop_background)
    return app


UPSTREAM_IDLE_SECONDS = 4.0   # below vLLM's (uvicorn's) 5 s keep-alive


async def _start_background(app: web.Application) -> None:
    # One pooled client for every upstream; no per-request session setup on the hot path. Idle
    # connections are dropped before the upstream's keep-alive ends (5 s in vLLM's server; aiohttp
    # keeps them 15 s): a request sent on one the upstream is closing fails with a reset, a 502.
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=UPSTREAM_IDLE_SECONDS)
    app[SESSION] = aiohttp.ClientSession(connector=connector, auto_decompress=False)
    await app[SHADOW].start(app[SESSION])
    await app[STATE].audit.start()


async def _stop_background(app: web.Application) -> None:
    await app[SHADOW].stop()
    await app[STATE].audit.stop()
    await app[SESSION].close()


class GatewayServer:
    """The gateway on its own event loop in a daemon thread; port 0 picks a free port."""

    def __init__(self, state: GatewayState, host: str = "127.0.0.1", port: int = 0):
        self.state, self.host, self.port = state, host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> "GatewayServer":
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="relctl-gateway", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout)
        log.info("gateway ready", extra={"url": self.url})
        return self

    async def _serve(self) -> None:
        self._runner = web.AppRunner(build_app(self.state), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> "GatewayServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
