"""`relctl serve`: the controller process (scheduler + REST API + MLflow webhook receiver)."""
from __future__ import annotations

import logging

import uvicorn

from controller.api.app import create_app
from controller.api.auth import tokens_from_env
from controller.config import WatchedModel, load_settings, secret
from controller.logs import setup_logging
from controller.runtime import build_controller, start_scheduler
from controller.service import handle_registry_event

log = logging.getLogger(__name__)
WEBHOOK_SECRET_ENV = "RELCTL_WEBHOOK_SECRET"


def serve(config: str | None, watch: list[str]) -> int:
    setup_logging()
    settings = load_settings(config)
    for spec in watch:
        name, _, policy = spec.partition(":")
        settings.models.append(WatchedModel(name=name, policy=policy or "default"))
    tokens = tokens_from_env()
    if not tokens:
        log.warning("api.no_tokens: set RELCTL_API_TOKENS; every API call will be refused")
    ctx, sessions = build_controller(settings)
    routers = []
    if secret(WEBHOOK_SECRET_ENV):
        from controller.registry.webhook import ensure_webhook, webhook_router
        policies = {m.name: m.policy for m in settings.models}
        if settings.webhook_url:  # polling stays on: MLflow drops events it cannot deliver
            ensure_webhook(settings.mlflow_uri, settings.webhook_url, secret(WEBHOOK_SECRET_ENV))
        routers.append(webhook_router(secret(WEBHOOK_SECRET_ENV),
                                      lambda ev: handle_registry_event(ctx, ev, policies.get(ev.name))))
    app = create_app(ctx, tokens, tuple(routers))
    sched = start_scheduler(ctx, settings, sessions)
    log.info("controller.ready", extra={"api": f"http://{settings.api_host}:{settings.api_port}",
                                        "models": [m.name for m in settings.models]})
    try:
        uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_level="warning")
    finally:
        sched.shutdown(wait=False)
    return 0
