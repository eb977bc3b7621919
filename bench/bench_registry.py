"""Registry adapter benchmark against a real MLflow server on this machine.

    .venv/bin/python bench/bench_registry.py [--versions 200] [--size-mb 64]

Prints one line per figure and a JSON summary: poll() latency as versions accumulate,
checkpoint upload/download throughput, webhook receiver throughput (signed requests
through uvicorn), and MLflow -> receiver webhook latency (server cache TTL 1 s).
"""
from __future__ import annotations

import argparse
import asyncio
import functools
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402

from controller.registry import conventions as c  # noqa: E402
from controller.registry.mlflow_registry import MlflowRegistry  # noqa: E402
from controller.registry.mlflow_server import MlflowServer, free_port  # noqa: E402
from controller.registry.signature import (  # noqa: E402
    DELIVERY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign)
from controller.registry.webhook import WEBHOOK_PATH, ensure_webhook, webhook_router  # noqa: E402

SECRET = "bench-secret"


def timed(fn, repeat: int) -> float:
    """Median seconds of `repeat` calls."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def checkpoint(folder: Path, size_mb: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(bytes(size_mb * 1024 * 1024))
    return folder


def bench_poll(reg: MlflowRegistry, tmp: Path, versions: int) -> dict:
    small = checkpoint(tmp / "small", 0)
    out, have = {}, 0
    for target in (1, 10, versions):
        while have < target:
            reg.register_checkpoint("bench-poll", small)
            have += 1
        seen = {str(v) for v in range(1, have + 1)}
        out[target] = timed(functools.partial(reg.poll, "bench-poll", seen), 20)
        print(f"poll() with {target:4d} versions: {out[target] * 1000:7.1f} ms (median of 20)")
    return {f"poll_ms_{k}_versions": round(v * 1000, 1) for k, v in out.items()}


def bench_transfer(reg: MlflowRegistry, tmp: Path, size_mb: int) -> dict:
    folder = checkpoint(tmp / "big", size_mb)
    start = time.perf_counter()
    version = reg.register_checkpoint("bench-transfer", folder)
    up = time.perf_counter() - start
    start = time.perf_counter()
    reg.download("bench-transfer", version, tmp / "cache")
    down = time.perf_counter() - start
    cached = timed(lambda: reg.download("bench-transfer", version, tmp / "cache"), 5)
    print(f"register {size_mb} MB: {up:.2f} s ({size_mb / up:.0f} MB/s); download: "
          f"{down:.2f} s ({size_mb / down:.0f} MB/s); cached download: {cached * 1e6:.0f} us")
    return {"register_mb_s": round(size_mb / up), "download_mb_s": round(size_mb / down),
            "cached_download_us": round(cached * 1e6)}


class Receiver:
    def __init__(self, on_event):
        self.port = free_port()
        app = FastAPI()
        app.include_router(webhook_router(SECRET, on_event))
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


async def _flood(url: str, total: int, concurrency: int) -> float:
    body = json.dumps({"entity": "model_version_tag", "action": "set", "data": {
        "name": "m", "version": "1", "key": "k", "value": "v"}}).encode()
    queue = list(range(total))

    async def worker(session):
        while queue:
            queue.pop()
            delivery, ts = str(uuid.uuid4()), str(int(time.time()))
            headers = {DELIVERY_ID_HEADER: delivery, TIMESTAMP_HEADER: ts,
                       SIGNATURE_HEADER: sign(SECRET, delivery, ts, body),
                       "Content-Type": "application/json"}
            async with session.post(url, data=body, headers=headers) as resp:
                assert resp.status == 200, resp.status

    start = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return time.perf_counter() - start


def bench_receiver(total: int = 3000) -> dict:
    received = []
    with Receiver(received.append) as rcv:
        url = f"http://127.0.0.1:{rcv.port}{WEBHOOK_PATH}"
        seconds = asyncio.run(_flood(url, total, 16))
    assert len(received) == total
    print(f"webhook receiver: {total / seconds:.0f} signed deliveries/s (16 concurrent, "
          f"client on the same 2 cores)")
    return {"receiver_req_s": round(total / seconds)}


def bench_webhook_latency(reg: MlflowRegistry, url: str, tmp: Path, rounds: int = 10) -> dict:
    arrivals: dict[str, float] = {}
    with Receiver(lambda e: arrivals.setdefault(e.tag_value, time.perf_counter())) as rcv:
        ensure_webhook(url, f"http://127.0.0.1:{rcv.port}{WEBHOOK_PATH}", SECRET)
        version = reg.register_checkpoint("bench-hook", checkpoint(tmp / "hook", 0))
        time.sleep(2)  # past the server's 1 s webhook cache
        lat = []
        for i in range(rounds):
            start = time.perf_counter()
            reg.set_tags("bench-hook", version, {c.TAG_ACTION: f"r{i}"})
            while f"r{i}" not in arrivals and time.perf_counter() - start < 10:
                time.sleep(0.002)
            lat.append(arrivals.get(f"r{i}", float("inf")) - start)
    median = statistics.median(lat)
    print(f"tag set -> webhook received: {median * 1000:.0f} ms median of {rounds} "
          f"(max {max(lat) * 1000:.0f} ms)")
    return {"webhook_latency_ms": round(median * 1000)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=200)
    parser.add_argument("--size-mb", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        start = time.perf_counter()
        with MlflowServer(tmp / "mlflow", webhook_cache_ttl_s=1) as server:
            print(f"mlflow server ready in {time.perf_counter() - start:.1f} s")
            reg = MlflowRegistry(server.url)
            summary = {**bench_poll(reg, tmp, args.versions),
                       **bench_transfer(reg, tmp, args.size_mb),
                       **bench_receiver(),
                       **bench_webhook_latency(reg, server.url, tmp)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
