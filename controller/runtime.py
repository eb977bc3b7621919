"""Assemble a Controller from settings, and the scheduler that drives it."""
from __future__ import annotations

import logging

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.orm import sessionmaker

from controller.config import Settings, secret
from controller.reconcile.context import Controller
from controller.reconcile.loop import reconcile
from controller.service import handle_registry_event, keep_champion_serving
from controller.store.audit import AuditStore
from controller.store.db import make_engine, migrate
from controller.store.deployments import DeploymentStore
from controller.store.models import RegistryCursorRow
from controller.store.releases import ReleaseStore

log = logging.getLogger(__name__)

GATEWAY_TOKEN_ENV = "RELCTL_GATEWAY_TOKEN"


def build_controller(settings: Settings) -> tuple[Controller, sessionmaker]:
    from controller.analysis.providers.prometheus import PrometheusProvider
    from controller.pools.local_vllm import LocalVllmPool
    from controller.registry.mlflow_registry import MlflowRegistry
    from controller.traffic.embedded import EmbeddedGatewayRouter

    settings.workdir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url())
    migrate(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    ctx = Controller(
        store=ReleaseStore(sessions),
        registry=MlflowRegistry(settings.mlflow_uri),
        pool=LocalVllmPool(DeploymentStore(sessions), settings.workdir, device=settings.pool_device),
        router=EmbeddedGatewayRouter(settings.gateway_admin_url, secret(GATEWAY_TOKEN_ENV)),
        metrics=PrometheusProvider(settings.prometheus_url),
        workdir=settings.workdir,
        audit=AuditStore(sessions),
    )
    return ctx, sessions


class Seen:
    """Versions already considered, kept in the store so a restart never starts a release twice."""

    def __init__(self, sessions: sessionmaker):
        self._sessions = sessions

    def get(self, model: str) -> set[str]:
        with self._sessions() as s:
            return {r.version for r in s.query(RegistryCursorRow).filter_by(model=model)}

    def add(self, model: str, versions: set[str]) -> None:
        with self._sessions.begin() as s:
            for v in versions - self.get(model):
                s.add(RegistryCursorRow(model=model, version=v))


def tick(ctx: Controller) -> None:
    """Reconcile every active release, then keep champions serving."""
    for release in ctx.store.list(active_only=True):
        try:
            reconcile(ctx, release.id)
        except Exception:
            log.exception("reconcile.error", extra={"release": release.id})


def poll_registry(ctx: Controller, settings: Settings, seen: Seen) -> None:
    for watched in settings.models:
        try:
            known = seen.get(watched.name)
            if not known:  # first look: what exists up to the champion is history, not news
                known = _baseline(ctx, watched.name)
                seen.add(watched.name, known)
            for ev in ctx.registry.poll(watched.name, known):
                handle_registry_event(ctx, ev, watched.policy)
                if ev.version:
                    seen.add(watched.name, {ev.version})
            keep_champion_serving(ctx, watched.name)
        except Exception as exc:
            log.warning("poll.error", extra={"model": watched.name, "error": str(exc)})


def _baseline(ctx: Controller, model: str) -> set[str]:
    champion = ctx.registry.get_alias(model, "champion")
    versions = [v.version for v in ctx.registry.list_versions(model)]
    if champion is None:
        return set(versions)
    return {v for v in versions if int(v) <= int(champion)} or {champion}


def start_scheduler(ctx: Controller, settings: Settings, sessions: sessionmaker) -> BackgroundScheduler:
    seen = Seen(sessions)
    sched = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
    sched.add_job(tick, "interval", seconds=settings.tick_seconds, args=[ctx], id="reconcile")
    sched.add_job(poll_registry, "interval", seconds=settings.poll_seconds, args=[ctx, settings, seen],
                  id="poll-registry")
    sched.start()
    return sched
