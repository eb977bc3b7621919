"""A tiny OpenAI-compatible server for the gateway's unit tests (never for integration tests).

Answers chat and text completions with a fixed reply, optionally slow, failing or
streamed word by word, and records what it received so tests can assert on upstream calls.
"""
from __future__ import annotations

import asyncio
import json
import threading
import time

from aiohttp import web


class FakeOpenAI:
    def __init__(self, reply: str = "hello from fake", *, delay_s: float = 0.0, status: int = 200,
                 chunk_delay_s: float = 0.0, usage: bool = True):
        self.reply, self.delay_s, self.status = reply, delay_s, status
        self.chunk_delay_s, self.usage = chunk_delay_s, usage
        self.bodies: list[dict] = []
        self.client_ports: list[int] = []     # the source port of each request's connection
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def calls(self) -> int:
        return len(self.bodies)

    def start(self) -> "FakeOpenAI":
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_post("/v1/completions", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.bodies.append(body)
        self.client_ports.append(request.transport.get_extra_info("peername")[1])
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.status != 200:
            return web.json_response({"error": {"message": "fake failure"}}, status=self.status)
        chat = request.path.endswith("/chat/completions")
        if body.get("stream"):
            return await self._stream(request, chat)
        choice = {"index": 0, "finish_reason": "stop"}
        choice.update({"message": {"role": "assistant", "content": self.reply}} if chat else {"text": self.reply})
        doc = {"id": "fake-1", "object": "chat.completion" if chat else "text_completion",
               "created": int(time.time()), "model": body.get("model"), "choices": [choice]}
        if self.usage:
            doc["usage"] = {"prompt_tokens": 3, "completion_tokens": len(self.reply.split()),
                            "total_tokens": 3 + len(self.reply.split())}
        return web.json_response(doc)

    async def _stream(self, request: web.Request, chat: bool) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        words = self.reply.split(" ")
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            choice = {"index": 0, "delta": {"content": piece}} if chat else {"index": 0, "text": piece}
            await resp.write(f"data: {json.dumps({'choices': [choice]})}\n\n".encode())
            if self.chunk_delay_s:
                await asyncio.sleep(self.chunk_delay_s)
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


def route_doc(model: str, stable_url: str, candidate_url: str, *, candidate_weight: float = 0.0,
              mirror: bool = False, validators: list[dict] | None = None, release: str = "rel-1") -> dict:
    """The admin API's JSON route for a stable/candidate pair (helper for gateway tests)."""
    return {
        "model": model, "release_id": release,
        "backends": [{"track": "stable", "url": stable_url, "version": "1"},
                     {"track": "candidate", "url": candidate_url, "version": "2"}],
        "weights": {"stable": 100.0 - candidate_weight, "candidate": candidate_weight},
        "mirror_to": "candidate" if mirror else None, "mirror_percent": 100.0,
        "validators": validators or [],
    }
