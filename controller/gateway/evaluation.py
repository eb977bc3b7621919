"""Evaluation traffic: relctl's scheduled evaluations of the live version, kept out of user metrics.

A request with `X-Relctl-Traffic: evaluation` is answered by the track serving the version named
in `X-Relctl-Version` (default: the stable track), never split, never mirrored, and not counted in
the per-track request/error/latency/session metrics or the audit log that the judge and the
dashboards read: those describe users. A version the route does not serve is a 409 naming it.
"""
from __future__ import annotations

from aiohttp import web

from controller.gateway.audit import sha256_hex
from controller.gateway.exchange import Exchange, error_body, execute, upstream_headers
from controller.gateway.keys import SESSION, STATE
from controller.gateway.state import CompiledRoute, Target

TRAFFIC_HEADER = "X-Relctl-Traffic"
VERSION_HEADER = "X-Relctl-Version"
EVALUATION = "evaluation"


def is_evaluation(headers) -> bool:
    return str(headers.get(TRAFFIC_HEADER, "")).strip().lower() == EVALUATION


def evaluation_target(route: CompiledRoute, version: str | None) -> Target | None:
    if version:
        return next((t for t in route.targets.values() if t.version == version.strip()), None)
    return route.targets.get("stable") or next(iter(route.targets.values()), None)


def _error(status: int, message: str, kind: str) -> web.Response:
    return web.Response(status=status, body=error_body(status, message, kind), content_type="application/json")


async def handle_evaluation(request: web.Request, route: CompiledRoute, body: dict, raw: bytes,
                            started: float) -> web.StreamResponse:
    if body.get("stream"):
        return _error(400, "evaluation traffic is not streamed: send 'stream': false", "invalid_request_error")
    target = evaluation_target(route, request.headers.get(VERSION_HEADER))
    if target is None:
        served = sorted(t.version for t in route.targets.values())
        return _error(409, f"version {request.headers.get(VERSION_HEADER)!r} of {route.model!r} is not served "
                           f"by this gateway; served: {served}", "version_not_served")
    ex = Exchange(request.app[STATE], route, target, "live", request.path, raw, sha256_hex(raw), False,
                  upstream_headers(request.headers), started)
    resp, _ = await execute(ex, request.app[SESSION], request)     # outcome not recorded: not a user's
    assert resp is not None                                          # only shadow exchanges answer None
    resp.headers["X-Relctl-Track"] = target.track
    resp.headers[VERSION_HEADER] = target.version
    return resp
