"""One request against one track: faults, the upstream call, classification, metrics, audit.

Used for the user's (live) request and for its mirrored (shadow) copy alike, so both
sides of a shadow pair are measured the same way.
"""
from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from controller.gateway.audit import AuditRecord, now_utc, sha256_hex
from controller.gateway.metrics import overload_class
from controller.gateway.state import CompiledRoute, GatewayState, Target
from controller.gateway.passthrough import end_to_end_headers
from controller.gateway.upstream import (ClientGone, StreamStats, blank_output, output_text,
                                         relay_stream, usage_tokens)
from policies.validators import first_failure

log = logging.getLogger(__name__)

PASS_HEADERS = ("Authorization",)      # forwarded upstream, never logged


@dataclass
class Outcome:
    track: str
    status: int
    latency_s: float
    text: str | None = None
    error_class: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    response_sha256: str = ""

    @property
    def ok(self) -> bool:
        return self.error_class is None and 200 <= self.status < 300


@dataclass
class Exchange:
    state: GatewayState
    route: CompiledRoute
    target: Target
    mode: str                 # live | shadow
    path: str                 # /v1/chat/completions | /v1/completions
    raw: bytes
    request_sha256: str
    stream: bool
    headers: dict[str, str]
    started: float            # perf_counter at arrival, so latency includes gateway time


def error_body(status: int, message: str, kind: str = "relctl_error") -> bytes:
    return json.dumps({"error": {"message": message, "type": kind, "code": status}}).encode()


def upstream_headers(request_headers) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    for name in PASS_HEADERS:
        if name in request_headers:
            headers[name] = request_headers[name]
    return headers


def _classify(ex: Exchange, status: int, text: str | None) -> str | None:
    if status >= 500:
        return "http_5xx"
    if status >= 400:
        return None                # the client's mistake, not the track's
    if not text:
        return "empty_output"
    reason = first_failure(ex.route.validators, text)
    if reason is not None:
        log.info("validator failed", extra={"model": ex.route.model, "track": ex.target.track,
                                            "mode": ex.mode, "reason": ex.state.config.redact(reason)})
        return "validator"
    return None


async def execute(ex: Exchange, session: aiohttp.ClientSession,
                  request: web.Request | None = None) -> tuple[web.StreamResponse | None, Outcome]:
    """Run the exchange; with a request, a stream is relayed to that request's client.
    A shadow exchange builds no response (None): nobody reads it."""
    fault = ex.state.fault_for(ex.route.model, ex.target.track)
    if fault is not None and fault.latency_ms > 0:
        await asyncio.sleep(fault.latency_ms / 1000.0)
    if fault is not None and fault.error_rate > 0 and random.random() < fault.error_rate:
        return _local_error(ex, 503, f"injected fault: {ex.target.track} unavailable", "http_5xx")
    truncate = fault is not None and fault.truncate
    try:
        async with await _post(ex, session) as up:
            if ex.stream and up.status == 200:
                return await _streamed(ex, up, request, truncate)
            return await _buffered(ex, up, truncate)
    except asyncio.TimeoutError:
        return _local_error(ex, 504, f"upstream {ex.target.track} timed out", "timeout")
    except aiohttp.ClientError as exc:
        return _local_error(ex, 502, f"upstream {ex.target.track} failed: {exc.__class__.__name__}",
                            "http_5xx")


async def _post(ex: Exchange, session: aiohttp.ClientSession) -> aiohttp.ClientResponse:
    """POST to the upstream. A pooled connection that the upstream closed while it sat idle (its
    keep-alive timeout, 5 s in vLLM's server) fails with ServerDisconnectedError before any answer:
    the request never reached the model, so it is sent once more, on a fresh connection."""
    def post():
        return session.post(ex.target.url + ex.path, data=ex.raw, headers=ex.headers, timeout=_timeout(ex))
    try:
        return await post()
    except aiohttp.ServerDisconnectedError:
        return await post()


def _timeout(ex: Exchange) -> aiohttp.ClientTimeout:
    return ex.state.timeouts[(ex.mode, ex.stream)]


def _local_error(ex: Exchange, status: int, message: str, error_class: str):
    body = error_body(status, message)
    outcome = Outcome(ex.target.track, status, time.perf_counter() - ex.started,
                      error_class=error_class, response_sha256=sha256_hex(body))
    if ex.mode == "shadow":
        return None, outcome          # nobody to answer
    return web.Response(status=status, body=body, content_type="application/json"), outcome


async def _buffered(ex: Exchange, up, truncate: bool):
    body = await up.read()
    text, prompt, completion = None, None, None
    if up.status < 300:
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            doc = None
        if truncate and doc is not None:
            doc = blank_output(doc)
            body = json.dumps(doc).encode()
        text = output_text(doc)
        prompt, completion = usage_tokens(doc)
    outcome = Outcome(ex.target.track, up.status, time.perf_counter() - ex.started, text=text,
                      # The pool's marked overload answers are their own class (metrics.overload_class).
                      error_class=overload_class(up.status, up.headers) or _classify(ex, up.status, text),
                      prompt_tokens=prompt,
                      completion_tokens=completion, response_sha256=sha256_hex(body))
    if ex.mode == "shadow":
        return None, outcome
    # An error keeps the upstream's end-to-end headers (Retry-After); a success needs only its type.
    headers = (end_to_end_headers(up.headers) if up.status >= 400
               else {"Content-Type": up.headers.get("Content-Type", "application/json")})
    resp = web.Response(status=up.status, body=body, headers=headers)
    return resp, outcome


async def _streamed(ex: Exchange, up, request: web.Request | None, truncate: bool):
    out = None
    if request is not None:
        out = web.StreamResponse(status=200, headers={
            "Content-Type": up.headers.get("Content-Type", "text/event-stream"),
            "Cache-Control": "no-cache", "X-Relctl-Track": ex.target.track})
        await out.prepare(request)
    stats, status, error_class = StreamStats(), 200, None
    try:
        await relay_stream(up, out, truncate, stats)
        if out is not None:
            await out.write_eof()
    except ClientGone:
        status = 499        # the user left; not the track's fault
    except asyncio.TimeoutError:
        status, error_class = 504, "timeout"     # headers already sent: the stream just ends
    except aiohttp.ClientError:
        status, error_class = 502, "http_5xx"
    if status == 200:
        error_class = _classify(ex, 200, stats.text)
    outcome = Outcome(ex.target.track, status, time.perf_counter() - ex.started, text=stats.text,
                      error_class=error_class, prompt_tokens=stats.prompt_tokens,
                      completion_tokens=stats.completion_tokens,
                      response_sha256=stats.digest.hexdigest())
    _observe_stream(ex, stats)
    return out, outcome


def _observe_stream(ex: Exchange, stats) -> None:
    m = ex.target.live if ex.mode == "live" else ex.target.shadow
    if stats.first_token_at is not None:
        m.ttft.observe(stats.first_token_at - ex.started)
    for gap in stats.gaps:
        m.inter_token.observe(gap)


def record(ex: Exchange, outcome: Outcome) -> None:
    """Count the outcome on its track's metrics and append its audit record."""
    m = ex.target.live if ex.mode == "live" else ex.target.shadow
    m.requests.inc()
    m.duration.observe(outcome.latency_s)
    if outcome.error_class is not None:
        m.errors[outcome.error_class].inc()
    if outcome.prompt_tokens:
        m.prompt_tokens.inc(outcome.prompt_tokens)
    if outcome.completion_tokens:
        m.completion_tokens.inc(outcome.completion_tokens)
    ex.state.audit.add(AuditRecord(
        at=now_utc(), model=ex.route.model, release_id=ex.route.release, version=ex.target.version,
        track=ex.target.track, mode=ex.mode, status=outcome.status,
        request_sha256=ex.request_sha256, response_sha256=outcome.response_sha256))

