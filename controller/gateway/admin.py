"""Admin API: the controller sets routes and faults here (bearer token), Prometheus scrapes /metrics."""
from __future__ import annotations

import functools
import hmac
import json
import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from controller.gateway.keys import STATE
from controller.gateway.proxy import json_error
from policies.validators import ValidatorConfigError
from controller.traffic.wire import (TRACKS, RouteError, fault_from_json, fault_to_json,
                                         route_from_json, route_to_json)

log = logging.getLogger(__name__)


def admin_only(handler):
    """Bearer-token check for one admin handler (the data plane pays nothing for it)."""
    @functools.wraps(handler)
    async def checked(request: web.Request) -> web.StreamResponse:
        expected = f"Bearer {request.app[STATE].config.admin_token}"
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            log.warning("admin call refused", extra={"path": request.path, "remote": request.remote})
            return json_error(401, "missing or wrong bearer token", "unauthorized")
        return await handler(request)
    return checked


async def _json_body(request: web.Request):
    try:
        return json.loads(await request.read())
    except (ValueError, RecursionError) as exc:
        raise web.HTTPBadRequest(text=json.dumps({"error": {"message": f"body is not JSON: {exc}"}}),
                                 content_type="application/json") from None


@admin_only
async def put_route(request: web.Request) -> web.Response:
    model = request.match_info["model"]
    doc = await _json_body(request)
    try:
        spec = route_from_json(doc)
        if spec.model != model:
            raise RouteError(f"path names model {model!r} but the body names {spec.model!r}")
        request.app[STATE].apply_route(spec)
    except (RouteError, ValidatorConfigError, ValueError) as exc:
        return json_error(400, str(exc))
    return web.json_response(route_to_json(spec))


@admin_only
async def get_route(request: web.Request) -> web.Response:
    model = request.match_info["model"]
    route = request.app[STATE].routes.get(model)
    if route is None:
        return json_error(404, f"no route for model {model!r}", "not_found")
    return web.json_response(route_to_json(route.spec))


@admin_only
async def delete_route(request: web.Request) -> web.Response:
    model = request.match_info["model"]
    if not request.app[STATE].remove_route(model):
        return json_error(404, f"no route for model {model!r}", "not_found")
    return web.Response(status=204)


@admin_only
async def put_fault(request: web.Request) -> web.Response:
    model, track = request.match_info["model"], request.match_info["track"]
    if track not in TRACKS:
        return json_error(400, f"track must be one of {TRACKS}, got {track!r}")
    try:
        fault = fault_from_json(await _json_body(request))
    except RouteError as exc:
        return json_error(400, str(exc))
    request.app[STATE].set_fault(model, track, fault)
    return web.json_response(fault_to_json(fault))


@admin_only
async def get_audit(request: web.Request) -> web.Response:
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        return json_error(400, "limit must be an integer")
    recent = list(request.app[STATE].audit.recent)[-max(limit, 0):] if limit > 0 else []
    return web.json_response({"records": [r.to_json() for r in recent]})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "routes": sorted(request.app[STATE].routes)})


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[STATE].metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application) -> None:
    # {model:.+} so that names like "org/model" (sent URL-encoded) still match.
    app.router.add_put("/admin/routes/{model:.+}", put_route)
    app.router.add_get("/admin/routes/{model:.+}", get_route)
    app.router.add_delete("/admin/routes/{model:.+}", delete_route)
    app.router.add_put("/admin/faults/{model:.+}/{track}", put_fault)
    app.router.add_get("/admin/audit", get_audit)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
