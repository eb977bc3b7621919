"""The speed gate: is the build served at least as fast as its parent?

Both OpenAI-compatible servers get the same prompts as streamed chat completions at each
of the policy's concurrency levels (parent first, then build, level by level). Per level
and side: time to first token and inter-token latency (p50, p99; gaps between streamed
content chunks, one token each in vLLM's default streaming) and output tokens per second
(completion tokens, from the stream's usage chunk where the server sends one, over the
level's wall time). The gate fails when any latency figure of the build exceeds the
parent's by more than `quality.max_latency_increase_pct` (and by more than
`quality.latency_slack_ms`, so timer noise on sub-millisecond figures never counts), when its throughput falls under
`quality.min_throughput_ratio` of the parent's, or when a request failed; what follows a
failure is the policy's `quality.on_slower` (fail the release, or deploy the
full-precision candidate), carried in the verdict's `action`.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import aiohttp
import numpy as np

LATENCIES = ("ttft_p50_ms", "ttft_p99_ms", "itl_p50_ms", "itl_p99_ms")


@dataclass(frozen=True)
class LevelStats:
    concurrency: int
    requests: int
    errors: int
    ttft_p50_ms: float
    ttft_p99_ms: float
    itl_p50_ms: float
    itl_p99_ms: float
    output_tokens_per_s: float


@dataclass(frozen=True)
class SpeedComparison:
    parent: tuple[LevelStats, ...]
    build: tuple[LevelStats, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"parent": [asdict(s) for s in self.parent], "build": [asdict(s) for s in self.build]}

    def metrics(self) -> dict[str, float]:
        """Flat figures for MLflow: speed.<side>.c<concurrency>.<figure>."""
        return {f"speed.{side}.c{s.concurrency}.{k}": float(v) for side, rows in (("parent", self.parent),
                ("build", self.build)) for s in rows for k, v in asdict(s).items() if k != "concurrency"}

    def table(self) -> str:
        head = "| conc | side | TTFT p50 / p99 ms | ITL p50 / p99 ms | out tok/s | errors |\n|---|---|---|---|---|---|"
        rows = [f"| {s.concurrency} | {side} | {s.ttft_p50_ms:.1f} / {s.ttft_p99_ms:.1f} | "
                f"{s.itl_p50_ms:.1f} / {s.itl_p99_ms:.1f} | {s.output_tokens_per_s:.1f} | {s.errors}/{s.requests} |"
                for p, b in zip(self.parent, self.build) for side, s in (("parent", p), ("build", b))]
        return "\n".join([head, *rows])


@dataclass(frozen=True)
class SpeedVerdict:
    passed: bool
    action: str                  # "proceed", or the policy's on_slower: "fail" | "deploy_full_precision"
    reason: str                  # the violations and the table
    comparison: SpeedComparison


@dataclass
class _Sample:
    ttft: float | None = None
    gaps: list[float] | None = None
    tokens: int = 0
    error: str | None = None


async def _stream_one(http: aiohttp.ClientSession, url: str, body: dict) -> _Sample:
    """One streamed chat completion: when the first and each later content chunk arrived."""
    sample, stamps, usage_tokens = _Sample(), [], None
    started = time.perf_counter()
    try:
        async with http.post(f"{url}/v1/chat/completions", json=body) as resp:
            if resp.status != 200:
                return _Sample(error=f"HTTP {resp.status}")
            async for raw in resp.content:
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[5:])
                if chunk.get("usage"):
                    usage_tokens = chunk["usage"].get("completion_tokens")
                if any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or []):
                    stamps.append(time.perf_counter())
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        return _Sample(error=f"{type(exc).__name__}: {exc}")
    if not stamps:
        return _Sample(error="no content streamed")
    sample.ttft, sample.gaps = stamps[0] - started, list(np.diff(stamps))
    sample.tokens = usage_tokens if usage_tokens is not None else len(stamps)
    return sample


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000.0 if values else float("nan")


async def _level(http, url: str, bodies: list[dict], concurrency: int) -> LevelStats:
    gate = asyncio.Semaphore(concurrency)

    async def one(body: dict) -> _Sample:
        async with gate:
            return await _stream_one(http, url, body)

    started = time.perf_counter()
    samples = await asyncio.gather(*(one(b) for b in bodies))
    wall = time.perf_counter() - started
    ok = [s for s in samples if s.error is None]
    ttfts, gaps = [s.ttft for s in ok], [g for s in ok for g in s.gaps]
    return LevelStats(concurrency, len(samples), len(samples) - len(ok), _pct(ttfts, 50), _pct(ttfts, 99),
                      _pct(gaps, 50), _pct(gaps, 99), sum(s.tokens for s in ok) / wall if wall > 0 else 0.0)


def _bodies(model: str, prompts: list[str], n: int, max_tokens: int, fixed_length: bool) -> list[dict]:
    extra = {"ignore_eos": True} if fixed_length else {}   # vLLM: every answer max_tokens long
    return [{"model": model, "messages": [{"role": "user", "content": prompts[i % len(prompts)]}],
             "max_tokens": max_tokens, "temperature": 0.0, "stream": True,
             "stream_options": {"include_usage": True}, **extra} for i in range(n)]


async def compare_speed_async(parent_url: str, build_url: str, model: str, prompts: list[str], *,
                              concurrency: list[int], requests_per_level: int, max_tokens: int,
                              build_model: str | None = None, fixed_length: bool = True,
                              timeout_s: float = 300.0,
                              on_progress: Callable[[int, int], None] | None = None) -> SpeedComparison:
    """Measure both servers level by level (one warm-up request each first).
    on_progress(done, total): levels measured of all, before each level and once at the end."""
    if not prompts:
        raise ValueError("the speed gate needs at least one prompt")
    sides = ((parent_url.rstrip("/"), model), (build_url.rstrip("/"), build_model or model))
    out: tuple[list[LevelStats], list[LevelStats]] = ([], [])
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s),
                                     connector=aiohttp.TCPConnector(limit=0)) as http:
        for url, name in sides:
            await _stream_one(http, url, _bodies(name, prompts, 1, max_tokens, fixed_length)[0])
        for level, c in enumerate(concurrency):
            if on_progress:
                on_progress(level, len(concurrency))
            for (url, name), rows in zip(sides, out):
                rows.append(await _level(http, url, _bodies(name, prompts, requests_per_level, max_tokens,
                                                            fixed_length), c))
    if on_progress:
        on_progress(len(concurrency), len(concurrency))
    return SpeedComparison(tuple(out[0]), tuple(out[1]))


def _violations(cmp: SpeedComparison, quality: Any) -> list[str]:
    limit, floor = quality.max_latency_increase_pct, quality.min_throughput_ratio
    found = []
    for p, b in zip(cmp.parent, cmp.build):
        if p.errors or b.errors:
            found.append(f"c={p.concurrency}: {p.errors} parent and {b.errors} build requests failed")
            continue
        for key in LATENCIES:
            before, after = getattr(p, key), getattr(b, key)
            increase = (after / before - 1) * 100 if before > 0 else 0.0
            if increase > limit and after - before > quality.latency_slack_ms:
                found.append(f"c={p.concurrency}: {key} {before:.1f} -> {after:.1f} (+{increase:.0f}% > {limit:g}%)")
        ratio = b.output_tokens_per_s / p.output_tokens_per_s if p.output_tokens_per_s > 0 else 0.0
        if ratio < floor:
            found.append(f"c={p.concurrency}: throughput ratio {ratio:.2f} < {floor:g}")
    return found


def check_speed(cmp: SpeedComparison, quality: Any) -> SpeedVerdict:
    """quality is policies.schema.QualityGate; the table is in the reason either way."""
    found = _violations(cmp, quality)
    if not found:
        return SpeedVerdict(True, "proceed", f"speed gate passed:\n{cmp.table()}", cmp)
    return SpeedVerdict(False, quality.on_slower,
                        f"speed gate failed ({'; '.join(found)}):\n{cmp.table()}", cmp)


def speed_gate(parent_url: str, build_url: str, model: str, prompts: list[str], quality: Any, *,
               build_model: str | None = None, fixed_length: bool = True, timeout_s: float = 300.0,
               on_progress: Callable[[int, int], None] | None = None) -> SpeedVerdict:
    """Measure at the policy's levels and decide. Blocking (its own event loop): run it in a job.
    on_progress(done, total): concurrency levels measured (see compare_speed_async)."""
    cmp = asyncio.run(compare_speed_async(
        parent_url, build_url, model, prompts, concurrency=list(quality.speed_concurrency),
        requests_per_level=quality.speed_requests_per_level, max_tokens=quality.speed_max_tokens,
        build_model=build_model, fixed_length=fixed_length, timeout_s=timeout_s, on_progress=on_progress))
    return check_speed(cmp, quality)


def default_prompts() -> list[str]:
    """Chat prompts for the speed gate: the small built-in suite's questions, without the Q:/A: frame."""
    from quantize.suites import load_suite
    return [it.prompt.removeprefix("Q: ").removesuffix("\nA:") for it in load_suite("builtin:small").items]
