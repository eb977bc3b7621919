"""A steady load of chat requests through the gateway (the demo's "users")."""
from __future__ import annotations

import asyncio
import itertools
import threading
from collections import Counter

import aiohttp

PROMPTS = ["What is the capital of France?", "Name a prime number.", "Say hello.",
           "What colour is the sky?", "Count to three.", "Which animal barks?"]


class LoadGenerator:
    """Sends `rps` chat requests per second, at most `concurrency` in flight, until stopped.

    Short answers (4 tokens): the judge counts answers and errors, and on two CPU cores every
    decoded token of the users' load is taken from the servers that are starting."""

    def __init__(self, gateway_url: str, model: str, rps: float = 20.0, concurrency: int = 16,
                 max_tokens: int = 4):
        self.url = gateway_url.rstrip("/") + "/v1/chat/completions"
        self.model, self.rps, self.concurrency, self.max_tokens = model, rps, concurrency, max_tokens
        self.status = Counter()           # HTTP status (or "conn_error") -> count
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True, name="load")

    def start(self) -> "LoadGenerator":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    async def _run(self) -> None:
        limit = asyncio.Semaphore(self.concurrency)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            tasks = set()
            for i in itertools.count():
                if self._stop.is_set():
                    break
                await limit.acquire()
                task = asyncio.create_task(self._one(session, i, limit))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                await asyncio.sleep(1.0 / self.rps)
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _one(self, session: aiohttp.ClientSession, i: int, limit: asyncio.Semaphore) -> None:
        body = {"model": self.model, "max_tokens": self.max_tokens, "temperature": 0,
                "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]}
        try:
            async with session.post(self.url, json=body, headers={"X-Relctl-Session": f"user-{i}"}) as resp:
                await resp.read()
                self.status[resp.status] += 1
        except (aiohttp.ClientError, asyncio.TimeoutError):
            self.status["conn_error"] += 1
        finally:
            limit.release()
