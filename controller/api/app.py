"""The REST release API. Routes are thin: they validate, then call controller.service."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request

from controller import service
from controller.api.auth import require, tenant_of_token, tenant_scope
from controller.api.errors import (CONFLICT, GATEWAY, INVALID, NOT_FOUND, UNAUTHORIZED, UNPARSABLE, as_json,
                                   install_handlers)
from controller.api.models import CreateRelease, FaultBody, FaultOut, Health, ModelName, ReleaseId, ReleaseOut
from controller.domain.release import Release, UserAction
from controller.domain.phase_table import owns_routes
from controller.domain.routing import desired_traffic
from controller.reconcile.context import Controller
from controller.report.api import report_router
from controller.scheduler.api import evaluations_router
from controller.tenants import Tenants
from controller.traffic.base import Fault
from controller.traffic.embedded import GatewayAdminError
from policies.schema import Policy

ReleasePath = Annotated[ReleaseId, Path(description="release id, e.g. rel-…")]


def release_json(r: Release) -> dict:
    return {"id": r.id, "model": r.model, "candidate_version": r.candidate_version,
            "stable_version": r.stable_version, "phase": r.phase.value, "step_index": r.step_index,
            "phase_started_at": r.phase_started_at.isoformat(), "paused_from": r.paused_from,
            "requested_action": r.requested_action, "reason": r.reason, "status": r.status}


def with_weights(ctx: Controller, r: Release) -> dict:
    """The release and the split its stored phase wants (the policy is frozen at creation)."""
    want = desired_traffic(r, Policy.model_validate(ctx.store.policy_of(r.id))) if owns_routes(r) else None
    weights = None if want is None else {"stable": 100.0 - want.candidate_weight, "candidate": want.candidate_weight,
                                         "mirror_percent": want.mirror_percent if want.mirror else 0.0}
    return {**release_json(r), "weights": weights}


def create_app(ctx: Controller, tokens: dict[str, str], extra_routers: tuple = (),
               tenants: Tenants | None = None) -> FastAPI:
    """`tenants` (settings' `tenants:`) says which models a token with `@TENANT` may see."""
    tenant_models = {name: frozenset(t.models) for name, t in (tenants or {}).items()}
    unknown = sorted({t for t in map(tenant_of_token, tokens.values()) if t and t not in tenant_models})
    if unknown:
        raise ValueError(f"API tokens name tenants that are not configured under `tenants:`: {', '.join(unknown)}")
    # every route, the included routers' too: another tenant's release or model is a 404
    app = FastAPI(title="relctl release API", version="0.1.0", dependencies=[Depends(tenant_scope)])
    app.state.tokens = tokens
    app.state.tenant_models = tenant_models
    app.state.ctx = ctx

    def owned(request: Request) -> frozenset[str] | None:
        """The models the request's token may see; None: all."""
        tenant = request.state.tenant
        return None if tenant is None else tenant_models[tenant]
    for router in extra_routers:
        app.include_router(router)
    # GET /api/v1/releases/{id}/report, /releases/{id}/page; their answers declared like the others'
    app.include_router(report_router(ctx), responses=as_json({**UNAUTHORIZED, **NOT_FOUND, **INVALID}))
    app.include_router(evaluations_router(ctx, require))   # scheduled evaluations of the live champion
    install_handlers(app)

    @app.get("/healthz")
    def healthz() -> Health:
        return Health(status="ok")

    @app.post("/api/v1/releases", status_code=201, dependencies=[require("operator")],
              responses={**UNAUTHORIZED, **CONFLICT, **INVALID, **UNPARSABLE})
    def create(body: CreateRelease, request: Request) -> ReleaseOut:
        models = owned(request)
        if models is not None and body.model not in models:
            raise HTTPException(404, f"no model {body.model!r}")   # as for an unknown one: no probing
        return release_json(service.create_release(ctx, body.model, body.version, body.policy))

    @app.get("/api/v1/releases", dependencies=[require("viewer")], responses={**UNAUTHORIZED, **INVALID})
    def list_releases(request: Request, model: ModelName | None = None, active: bool = False) -> list[ReleaseOut]:
        models = owned(request)
        return [with_weights(ctx, r) for r in ctx.store.list(model, active_only=active)
                if models is None or r.model in models]

    @app.get("/api/v1/releases/{release_id}", dependencies=[require("viewer")],
             responses={**UNAUTHORIZED, **NOT_FOUND, **INVALID})
    def get(release_id: ReleasePath) -> ReleaseOut:
        return with_weights(ctx, ctx.store.get(release_id))

    @app.get("/api/v1/releases/{release_id}/events", dependencies=[require("viewer")],
             responses={**UNAUTHORIZED, **NOT_FOUND, **INVALID})
    def events(release_id: ReleasePath) -> list[dict[str, Any]]:
        return ctx.store.events(release_id)

    for action in UserAction:     # one route each: documented, and no clash with /events
        _action_route(app, ctx, action)

    @app.get("/api/v1/audit", dependencies=[require("viewer")], responses={**UNAUTHORIZED, **INVALID})
    def audit(request: Request, model: ModelName | None = None, release_id: ReleaseId | None = None,
              sha256: Annotated[str | None, Query(pattern="^[0-9a-f]{64}$")] = None,
              limit: int = Query(100, ge=1, le=10000)) -> list[dict[str, Any]]:
        """Hashes of the requests and answers the gateway served (newest first)."""
        models = owned(request)
        if models is None:
            return ctx.audit.query(model=model, release_id=release_id, sha256=sha256, limit=limit)
        # a tenant's token: its models' records only, newest first across them
        rows = [row for m in sorted(models if model is None else models & {model})
                for row in ctx.audit.query(model=m, release_id=release_id, sha256=sha256, limit=limit)]
        return sorted(rows, key=lambda row: row["at"], reverse=True)[:limit]

    @app.put("/api/v1/faults/{model}/{track}", dependencies=[require("admin")],
             responses={**UNAUTHORIZED, **INVALID, **UNPARSABLE, **GATEWAY})
    def set_fault(model: ModelName, track: Literal["stable", "candidate"], body: FaultBody) -> FaultOut:
        try:
            ctx.router.set_fault(model, track, Fault(**body.model_dump()))
        except (GatewayAdminError, OSError) as exc:
            # None: never reached (503); else the gateway answered with an error (502).
            status = 503 if getattr(exc, "status", None) is None else 502
            raise HTTPException(status, f"fault not set: {exc}") from None
        return FaultOut(model=model, track=track, **body.model_dump())

    return app


def _action_route(app: FastAPI, ctx: Controller, action: UserAction) -> None:
    @app.post(f"/api/v1/releases/{{release_id}}/{action.value}", dependencies=[require("operator")],
              responses={**UNAUTHORIZED, **NOT_FOUND, **CONFLICT, **INVALID},
              operation_id=f"{action.value}_release", summary=f"{action.value.capitalize()} a release")
    def act(release_id: ReleasePath) -> ReleaseOut:
        return release_json(service.request_action(ctx, release_id, action.value))
