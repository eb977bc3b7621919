"""The soak's users: chat requests through the gateway at a fixed rate, every one accounted for.

    python bench/soak_load.py --url http://127.0.0.1:PORT --model M --seconds 600 --rate 2000 [--connections 64]

Open loop: request k is due at start + k/rate and is sent on the first free connection once
due (late when every connection is busy: the achieved rate then falls below the offered one
and the lateness is reported). `--rate 0` is closed loop (each connection sends as soon as it
has its answer): the capacity measurement. A plain HTTP/1.1 keep-alive client on asyncio
streams (uvloop), so the client's CPU, not aiohttp's, is what shares the cores with the stack.

Each request is counted once, in one of: answered (any HTTP status, by status), or not
answered (connect error before sending; reset, closed or timed out after sending). Prints
one JSON object; a progress line goes to stderr every 10 s.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from array import array
from collections import Counter
from urllib.parse import urlsplit

BUCKET_S = 10.0


def request_bytes(host: str, model: str, user: int) -> bytes:
    body = json.dumps({"model": model, "max_tokens": 4,
                       "messages": [{"role": "user", "content": "hello there"}]}).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"X-Relctl-Session: user-{user}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, server closes the connection); the body is read and dropped."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        await reader.readexactly(int(lower[at + 17:lower.index(b"\r\n", at + 2)]))
    elif b"\r\ntransfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.read()
        return status, True
    return status, b"\r\nconnection: close" in lower


class Load:
    def __init__(self, args: argparse.Namespace):
        parts = urlsplit(args.url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.rate, self.seconds, self.timeout = args.rate, args.seconds, args.timeout
        self.requests = [request_bytes(parts.netloc, args.model, u) for u in range(args.users)]
        self.connections = args.connections
        self.taken = self.sent = 0
        self.status: Counter = Counter()
        self.failed: Counter = Counter()          # not answered, by why
        self.latency = array("d")
        self.late_max = 0.0
        self.late_over_1s = 0
        self.answered_by_bucket: Counter = Counter()
        self.in_flight = 0

    def take(self, now: float) -> tuple[int, float] | None:
        """The next request (its number, which names its user, and its due time), or None once the run is over.

        The user is bound to the request's number, never picked at send time: every user sends
        equally often whatever the latencies, so the gateway's sticky split sees the intended shares."""
        due = self.t0 + self.taken / self.rate if self.rate else now
        if due >= self.t_end or now >= self.t_end:    # behind schedule at the end: the rest is not offered
            return None
        self.taken += 1
        return self.taken - 1, due

    async def worker(self) -> None:
        loop = asyncio.get_running_loop()
        reader = writer = None
        while True:
            ticket = self.take(loop.time())
            if ticket is None:
                break
            number, due = ticket
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            late = loop.time() - due
            self.late_max = max(self.late_max, late)
            self.late_over_1s += late > 1.0
            if writer is None:
                try:
                    reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), 5)
                except (OSError, asyncio.TimeoutError) as exc:
                    self.failed[f"connect:{type(exc).__name__}"] += 1
                    await asyncio.sleep(0.05)
                    continue
            started = time.perf_counter()
            self.in_flight += 1
            try:
                async with asyncio.timeout(self.timeout):
                    writer.write(self.requests[number % len(self.requests)])
                    self.sent += 1
                    status, close = await read_response(reader)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                    TimeoutError) as exc:
                self.failed[f"after_send:{type(exc).__name__}"] += 1
                writer.close()
                reader = writer = None
                continue
            finally:
                self.in_flight -= 1
            now = loop.time()
            self.status[status] += 1
            self.latency.append(time.perf_counter() - started)
            self.answered_by_bucket[int((now - self.t0) // BUCKET_S)] += 1
            if close:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    async def progress(self) -> None:
        while True:
            await asyncio.sleep(BUCKET_S)
            print(json.dumps({"t": round(asyncio.get_running_loop().time() - self.t0), "sent": self.sent,
                              "answered": sum(self.status.values()), "failed": sum(self.failed.values()),
                              "in_flight": self.in_flight}), file=sys.stderr, flush=True)

    async def run(self) -> dict:
        loop = asyncio.get_running_loop()
        self.t0 = loop.time()
        self.t_end = self.t0 + self.seconds
        ticker = asyncio.create_task(self.progress())
        await asyncio.gather(*(self.worker() for _ in range(self.connections)))
        ticker.cancel()
        return self.report(loop.time() - self.t0)

    def report(self, wall: float) -> dict:
        answered = sum(self.status.values())
        lat = sorted(self.latency)

        def pct(q: float) -> float | None:
            return round(1000 * lat[min(len(lat) - 1, int(q * len(lat)))], 2) if lat else None
        buckets = [self.answered_by_bucket.get(i, 0) / BUCKET_S for i in range(int(self.seconds // BUCKET_S))]
        return {"seconds": round(wall, 2), "offered_rps": self.rate or None, "connections": self.connections,
                "attempted": self.taken, "sent": self.sent, "answered": answered,
                "not_offered": round(self.rate * self.seconds) - self.taken if self.rate else 0,
                "achieved_rps": round(answered / wall, 1),
                "status": {str(k): v for k, v in sorted(self.status.items())},
                "not_answered": dict(self.failed), "latency_ms": {"p50": pct(0.5), "p99": pct(0.99),
                                                                  "max": pct(1.0)},
                "late_max_s": round(self.late_max, 3), "late_over_1s": self.late_over_1s,
                "answered_rps_per_10s": {"min": min(buckets, default=0), "max": max(buckets, default=0),
                                         "each": [round(b) for b in buckets]}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="the gateway, http://HOST:PORT")
    p.add_argument("--model", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--rate", type=float, default=0.0, help="requests per second; 0: closed loop (capacity)")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--users", type=int, default=100_000,
                   help="distinct X-Relctl-Session values, used in turn (more than the gateway's per-track session "
                        "memory of 65,536: it fills up and then stays full)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before a request counts as unanswered")
    args = p.parse_args(argv)
    try:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    print(json.dumps(asyncio.run(Load(args).run())), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
