"""`relctl serve`: the controller process (scheduler + REST API + MLflow webhook receiver)."""
from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timezone

import uvicorn
from prometheus_client import make_asgi_app

from controller.analysis.providers.batched import BatchedProvider
from controller.api.app import create_app
from controller.api.auth import tokens_from_env
from controller.config import WatchedModel, load_settings, secret
from controller.logs import setup_logging
from controller.notify import start_notifications
from controller.observability import register_release_counts
from controller.reconcile.workers import ReleaseWorkers
from controller.report.metrics import register_release_details
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
        from policies.loader import watch_policy_ref
        # Only watched models may start releases (polling covers no others either).
        policies = {m.name: watch_policy_ref(m.policy) for m in settings.models}
        if settings.webhook_url:  # polling stays on: MLflow drops events it cannot deliver
            ensure_webhook(settings.mlflow_uri, settings.webhook_url, secret(WEBHOOK_SECRET_ENV))
        routers.append(webhook_router(secret(WEBHOOK_SECRET_ENV),
                                      lambda ev: handle_registry_event(ctx, ev, policies[ev.name]),
                                      watched=set(policies)))
    app = create_app(ctx, tokens, tuple(routers), tenants=settings.tenants)
    app.mount("/metrics", make_asgi_app())   # the controller's own metrics (observability.py)
    register_release_counts(ctx.store.count_by_phase)
    register_release_details(ctx.store)      # phase, weight, e-value per release for the dashboards
    # before any event is written: each event's notifications go into the outbox in its transaction
    notifier = start_notifications(sessions, settings.notifications, f"http://{settings.api_host}:{settings.api_port}")
    elector = _leader_elector(settings)
    workers = ReleaseWorkers(ctx, settings.reconcile_workers, elector.is_leader if elector else lambda: True)
    if isinstance(ctx.metrics, BatchedProvider):   # a release whose candidate errs is judged first
        ctx.metrics.on_new_errors(workers.hurry)
    sched = start_scheduler(ctx, settings, sessions, workers)
    if elector is not None:   # renewed well inside the lease; a replica that loses it stops acting at once
        sched.add_job(elector.tick, "interval", seconds=max(1, settings.kubernetes.lease_seconds / 3),
                      id="leader-election", next_run_time=datetime.now(timezone.utc))
    sched.add_job(notifier.deliver_due, "interval", seconds=1, id="notify", max_instances=1, coalesce=True)
    log.info("controller.ready", extra={"api": f"http://{settings.api_host}:{settings.api_port}",
                                        "models": [m.name for m in settings.models]})
    try:
        uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_level="warning")
    finally:
        sched.shutdown(wait=False)
        workers.shutdown()
        if elector is not None:
            elector.release()
    return 0


def _leader_elector(settings):
    """On Kubernetes, replicas elect one reconciler through a coordination.k8s.io Lease."""
    if settings.pool != "kubernetes" or not settings.kubernetes.leader_election:
        return None
    from controller.k8s.leader import build_elector
    return build_elector(settings, os.environ.get("POD_NAME") or socket.gethostname())
