"""A notification receiver on 127.0.0.1 (aiohttp, in a thread of its own) for the tests.

It records every request as it came (headers, body, whether the signature held) and can be
told to fail the next N requests or to answer slowly, like a flaky or overloaded subscriber."""
from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass

from aiohttp import web

from controller.notify.signing import DeliveryVerifier, SignatureError
from controller.ports import free_port


@dataclass
class Received:
    path: str
    delivery_id: str
    body: dict
    signature_ok: bool | None          # None: the path is not signed (Slack)
    error: str = ""


class NotificationReceiver:
    def __init__(self, secret: str, delay_s: float = 0.0) -> None:
        self.port, self.delay_s = free_port(), delay_s
        self.received: list[Received] = []
        self.fail_next = 0
        self._verifier = DeliveryVerifier(secret, max_age_s=600)
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=503, text="try later")
        ok, error = None, ""
        if request.path == "/hook":
            try:
                self._verifier.verify(request.headers, body)
                ok = True
            except SignatureError as exc:
                ok, error = False, str(exc)
        self.received.append(Received(request.path, request.headers.get("X-Relctl-Delivery-Id", ""),
                                      json.loads(body), ok, error))
        return web.Response(status=204)

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/{name}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def start(self) -> "NotificationReceiver":
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return self

    def wait_count(self, n: int, timeout: float = 20.0, pump=None) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < n and time.monotonic() < deadline:
            pump() if pump else time.sleep(0.05)
        if len(self.received) < n:
            raise TimeoutError(f"{len(self.received)} of {n} notifications within {timeout:.0f} s")

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
