"""The data plane: OpenAI-compatible endpoints that pick a track, mirror, and forward."""
from __future__ import annotations

import json
import logging
import time

from aiohttp import web

from controller.gateway.audit import sha256_hex
from controller.gateway.evaluation import handle_evaluation, is_evaluation
from controller.gateway.keys import SESSION, SHADOW, STATE
from controller.gateway.exchange import Exchange, error_body, execute, record, upstream_headers
from controller.gateway.routing import request_point, session_key

log = logging.getLogger(__name__)

SESSION_HEADER = "X-Relctl-Session"
# Each endpoint and the field it cannot do without.
REQUIRED = {"/v1/chat/completions": ("messages", list), "/v1/completions": ("prompt", (str, list))}


class BadRequest(ValueError):
    pass


def parse_request(path: str, raw: bytes) -> dict:
    """Check the body enough to route it; the upstream validates the rest."""
    if not raw:
        raise BadRequest("request body is empty; expected a JSON object")
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest("request body is nested too deeply") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("field 'model' is required and must be a non-empty string")
    field_name, kinds = REQUIRED[path]
    if not isinstance(body.get(field_name), kinds) or not body[field_name]:
        raise BadRequest(f"field '{field_name}' is required for {path}")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise BadRequest("field 'stream' must be true or false")
    return body


def json_error(status: int, message: str, kind: str = "invalid_request_error") -> web.Response:
    return web.Response(status=status, body=error_body(status, message, kind),
                        content_type="application/json")


async def handle_completion(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    started = time.perf_counter()
    raw = await request.read()
    try:
        body = parse_request(request.path, raw)
    except BadRequest as exc:
        return json_error(400, str(exc))
    route = state.routes.get(body["model"])
    if route is None:
        return json_error(404, f"model {body['model']!r} is not served by this gateway; "
                               f"known models: {sorted(state.routes)}", "model_not_found")
    if is_evaluation(request.headers):      # relctl's own evaluations: not user traffic
        return await handle_evaluation(request, route, body, raw, started)
    key = session_key(request.headers.get(SESSION_HEADER), body)
    track = route.split.pick(request_point(key))
    stream = bool(body.get("stream", False))
    ex = Exchange(state, route, route.targets[track], "live", request.path, raw, sha256_hex(raw), stream,
                  upstream_headers(request.headers), started)
    job = request.app[SHADOW].offer(ex)
    outcome = None
    try:
        resp, outcome = await execute(ex, request.app[SESSION], request)
        record(ex, outcome)
        # Sessions per track for the judge's `analysis.unit: session` (metrics.SessionTracker).
        ex.target.live.sessions.observe(key, outcome.error_class not in (None, "overload"))
    finally:
        if job is not None:
            job.set_live(outcome)       # None (cancelled) tells the worker there is no pair
    if not resp.prepared:
        resp.headers["X-Relctl-Track"] = track
    return resp


async def handle_models(request: web.Request) -> web.Response:
    state = request.app[STATE]
    created = int(time.time())
    data = [{"id": m, "object": "model", "created": created, "owned_by": "relctl"}
            for m in sorted(state.routes)]
    return web.json_response({"object": "list", "data": data})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", handle_completion)
    app.router.add_post("/v1/completions", handle_completion)
    app.router.add_get("/v1/models", handle_models)
