"""Evaluations over HTTP: `GET /api/v1/models/{model}/evaluations` (viewer) and
`POST /api/v1/models/{model}/evaluations/run` (operator), the same functions the schedule calls."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from controller.api.errors import INVALID, UNAUTHORIZED, ErrorMessage
from controller.api.models import ModelName
from controller.scheduler.evaluations import current_env, next_run_time
from controller.scheduler.runs import NoChampion, start_evaluation
from controller.scheduler.store import RUNNING, SKIPPED

ModelPath = Annotated[ModelName, Path(description="registered model name")]
ERRORS = {**UNAUTHORIZED, **INVALID,
          404: {"model": ErrorMessage, "description": "the model is not watched by this controller "
                                                     "(or no evaluation scheduler runs in this process)"}}
BUSY = {409: {"model": ErrorMessage, "description": "the model has no champion, or an evaluation of it is running "
                                                   "(the refused run stays in the history as skipped)"}}


def _env_for(model: str):
    env = current_env()
    if env is None:
        raise HTTPException(404, f"model {model!r} is not watched: no evaluation scheduler runs in this controller")
    if model not in env.models:
        # Not naming the watched models: a tenant's token must not learn other tenants' models.
        raise HTTPException(404, f"model {model!r} is not watched by this controller")
    return env


def schedule_json(env, model: str) -> dict[str, Any]:
    policy = env.evaluation_policy(model)
    nxt = next_run_time(model)
    return {"cron": policy.cron, "interval_seconds": policy.interval_seconds, "suites": policy.suites,
            "max_accuracy_drop_pct": policy.max_accuracy_drop_pct,
            "max_compliance_drop_pct": policy.max_compliance_drop_pct,
            "misfire_grace_seconds": policy.misfire_grace_seconds,
            "next_run_time": nxt.isoformat() if nxt else None}


def evaluations_router(ctx, require_role) -> APIRouter:
    """`ctx` is the controller; runs come from the process's evaluation environment (schedule_evaluations)."""
    router = APIRouter()

    @router.get("/api/v1/models/{model}/evaluations", dependencies=[require_role("viewer")], responses=ERRORS)
    def evaluations(model: ModelPath, limit: Annotated[int, Query(ge=1, le=500)] = 20) -> dict[str, Any]:
        env = _env_for(model)
        runs = env.store.history(model, limit)
        return {"model": model, "schedule": schedule_json(env, model),
                "running": next((r.to_json() for r in runs if r.state == RUNNING), None),
                "runs": [r.to_json() for r in runs]}

    @router.post("/api/v1/models/{model}/evaluations/run", status_code=202, dependencies=[require_role("operator")],
                 responses={**ERRORS, **BUSY})
    def run(model: ModelPath) -> dict[str, Any]:
        env = _env_for(model)
        try:
            started = start_evaluation(env, model, "manual")
        except NoChampion as exc:
            raise HTTPException(409, str(exc)) from None
        if started is None or started.state == SKIPPED:
            raise HTTPException(409, started.reason if started else f"an evaluation of {model} is running")
        return started.to_json()

    return router
