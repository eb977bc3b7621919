"""Assemble a Controller from settings, and the scheduler that drives it."""
from __future__ import annotations

import logging

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.orm import sessionmaker

from controller import backends
from controller import observability as obs
from controller.config import Settings
from controller.reconcile.context import Controller, utc_now
from controller.reconcile.jobs import JobRunner
from controller.reconcile.workers import ReleaseWorkers
from controller.scheduler.evaluations import schedule_evaluations
from controller.service import handle_registry_event, keep_champion_serving, reconcile_champion, release_queued
from controller.store.audit import AuditStore
from controller.store.db import make_engine, migrate
from controller.store.jobs import JobStore
from controller.store.models import RegistryCursorRow
from controller.store.registry_state import ChampionStore, VersionQueue
from controller.store.releases import ReleaseStore
from policies.loader import watch_policy_ref

log = logging.getLogger(__name__)


def build_controller(settings: Settings) -> tuple[Controller, sessionmaker]:
    settings.workdir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url())
    migrate(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    ctx = Controller(
        store=ReleaseStore(sessions),
        registry=backends.make("registry", settings.registry, settings, sessions),
        pool=backends.make("pool", settings.pool, settings, sessions),
        router=backends.make("router", settings.router, settings, sessions),
        metrics=backends.make("metrics", settings.metrics, settings, sessions),
        workdir=settings.workdir,
        jobs=JobRunner(JobStore(sessions), utc_now),
        champions=ChampionStore(sessions),
        queue=VersionQueue(sessions),
        audit=AuditStore(sessions),
        quantize_jobs=backends.make("quantize", settings.quantize_runner, settings, sessions),
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


def poll_registry(ctx: Controller, settings: Settings, seen: Seen) -> None:
    """Per watched model: a human move of `champion`, new events, queued versions, the champion served."""
    for watched in settings.models:
        policy = watch_policy_ref(watched.policy)
        try:
            reconcile_champion(ctx, watched.name, policy)
            known = seen.get(watched.name)
            if not known:  # first look: what exists up to the champion is history, not news
                known = _baseline(ctx, watched.name)
                seen.add(watched.name, known)
            for ev in ctx.registry.poll(watched.name, known):
                handle_registry_event(ctx, ev, policy)
                if ev.version:
                    seen.add(watched.name, {ev.version})
            release_queued(ctx, watched.name)
            keep_champion_serving(ctx, watched.name)
            obs.LAST_POLL.labels(watched.name).set_to_current_time()
        except Exception as exc:
            log.warning("poll.error", extra={"model": watched.name, "error": str(exc)})


def _baseline(ctx: Controller, model: str) -> set[str]:
    champion = ctx.registry.get_alias(model, "champion")
    versions = [v.version for v in ctx.registry.list_versions(model)]
    if champion is None:
        return set(versions)
    return {v for v in versions if int(v) <= int(champion)} or {champion}


def start_scheduler(ctx: Controller, settings: Settings, sessions: sessionmaker,
                    workers: ReleaseWorkers) -> BackgroundScheduler:
    seen = Seen(sessions)
    sched = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
    sched.add_job(workers.tick, "interval", seconds=settings.tick_seconds, id="reconcile")
    sched.add_job(lambda: workers.is_leader() and poll_registry(ctx, settings, seen), "interval",
                  seconds=settings.poll_seconds, id="poll-registry")
    sched.start()
    schedule_evaluations(sched, ctx, settings)   # needs a started scheduler to read its stored jobs
    return sched
