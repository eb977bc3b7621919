"""The REST release API. Routes are thin: they validate, then call controller.service."""
from __future__ import annotations

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from controller import service
from controller.api.auth import require
from controller.domain.release import Release
from controller.reconcile.context import Controller
from controller.store.releases import Conflict, NotFound
from controller.traffic.base import Fault


class CreateRelease(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1)
    version: str = Field(min_length=1)
    policy: str | dict | None = Field(None, description="built-in policy name, path, or an inline policy")


class FaultBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    error_rate: float = Field(0.0, ge=0, le=1)
    latency_ms: float = Field(0.0, ge=0)
    truncate: bool = False


def release_json(r: Release) -> dict:
    return {"id": r.id, "model": r.model, "candidate_version": r.candidate_version,
            "stable_version": r.stable_version, "phase": r.phase.value, "step_index": r.step_index,
            "phase_started_at": r.phase_started_at.isoformat(), "paused_from": r.paused_from,
            "requested_action": r.requested_action, "reason": r.reason, "status": r.status}


def create_app(ctx: Controller, tokens: dict[str, str], extra_routers: tuple = ()) -> FastAPI:
    app = FastAPI(title="relctl release API", version="0.1.0")
    app.state.tokens = tokens
    app.state.ctx = ctx
    for router in extra_routers:
        app.include_router(router)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound):
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict):
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(service.BadRequest)
    async def _bad(_: Request, exc: service.BadRequest):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.post("/api/v1/releases", status_code=201, dependencies=[require("operator")])
    def create(body: CreateRelease) -> dict:
        return release_json(service.create_release(ctx, body.model, body.version, body.policy))

    @app.get("/api/v1/releases", dependencies=[require("viewer")])
    def list_releases(model: str | None = None, active: bool = False) -> list[dict]:
        return [release_json(r) for r in ctx.store.list(model, active_only=active)]

    @app.get("/api/v1/releases/{release_id}", dependencies=[require("viewer")])
    def get(release_id: str) -> dict:
        return release_json(ctx.store.get(release_id))

    @app.get("/api/v1/releases/{release_id}/events", dependencies=[require("viewer")])
    def events(release_id: str) -> list[dict]:
        return ctx.store.events(release_id)

    @app.post("/api/v1/releases/{release_id}/{action}", dependencies=[require("operator")])
    def act(release_id: str, action: str) -> dict:
        return release_json(service.request_action(ctx, release_id, action))

    @app.get("/api/v1/audit", dependencies=[require("viewer")])
    def audit(model: str | None = None, release_id: str | None = None, sha256: str | None = None,
              limit: int = Query(100, ge=1, le=10000)) -> list[dict]:
        """Hashes of the requests and answers the gateway served (newest first)."""
        return ctx.audit.query(model=model, release_id=release_id, sha256=sha256, limit=limit)

    @app.put("/api/v1/faults/{model}/{track}", dependencies=[require("admin")])
    def set_fault(model: str, track: str, body: FaultBody) -> dict:
        if track not in ("stable", "candidate"):
            raise HTTPException(422, "track must be stable or candidate")
        ctx.router.set_fault(model, track, Fault(**body.model_dump()))
        return {"model": model, "track": track, **body.model_dump()}

    return app
