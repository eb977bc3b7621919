"""Error bodies of the REST API, declared in OpenAPI so that generated clients and the
server agree: {"detail": "message"} for every 4xx/5xx, and for 422 either that or
FastAPI's list of field errors (each with its `loc`, e.g. ["body", "version"])."""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from pydantic import BaseModel, ConfigDict

from controller import service
from controller.store.releases import Conflict, NotFound


class ErrorMessage(BaseModel):
    detail: str


class FieldError(BaseModel):
    model_config = ConfigDict(extra="allow")    # FastAPI adds `input` and `ctx`
    loc: list[str | int]
    msg: str
    type: str


class InvalidInput(BaseModel):
    detail: str | list[FieldError]


def _doc(text: str, model=ErrorMessage) -> dict[str, Any]:
    return {"model": model, "description": text}


UNAUTHORIZED = {401: _doc("missing or unknown bearer token"),
                403: _doc("the token's role may not do this")}
NOT_FOUND = {404: _doc("no such release")}
CONFLICT = {409: _doc("the release's state does not allow this now")}
INVALID = {422: _doc("invalid input; the message or `loc` names the field", InvalidInput)}
UNPARSABLE = {400: _doc("the body is not JSON")}


def as_json(responses: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The same error answers for routes whose own body is not JSON (an HTML page): FastAPI
    would file their schemas under the route's media type; the errors are JSON all the same."""
    ref = "#/components/schemas/{model}"
    out = {}
    for code, doc in responses.items():
        schema = {k: v for k, v in doc["model"].model_json_schema(ref_template=ref).items() if k != "$defs"}
        out[code] = {"description": doc["description"], "content": {"application/json": {"schema": schema}}}
    return out
GATEWAY = {502: _doc("the gateway refused the change"), 503: _doc("the gateway is unreachable")}


def install_handlers(app: FastAPI) -> None:
    """Domain errors become 4xx with a message, never a 500."""
    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound):
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict):
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(service.BadRequest)
    async def _bad(_: Request, exc: service.BadRequest):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 405:   # Starlette names only the first route's methods
            return JSONResponse({"detail": exc.detail}, status_code=405,
                                headers={"Allow": ", ".join(_methods_for(app, request.scope["path"]))})
        return await http_exception_handler(request, exc)


def _methods_for(app: FastAPI, path: str) -> list[str]:
    return sorted({m for r in app.routes if isinstance(r, APIRoute) and r.path_regex.match(path)
                   for m in r.methods})
