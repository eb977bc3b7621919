"""Shared fixtures: a Controller on a real SQLite store with in-memory backends (tests/fakes)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

from controller.reconcile.context import Controller
from controller.reconcile.jobs import JobRunner
from controller.store.audit import AuditStore
from controller.store.db import make_engine, migrate
from controller.store.jobs import JobStore
from controller.store.registry_state import ChampionStore, VersionQueue
from controller.store.releases import ReleaseStore
from tests.fakes import FakePool, FakeProvider, FakeRegistry, FakeRouter


class FakeClock:
    def __init__(self):
        self.now = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def make_controller(workdir: Path, **parts) -> Controller:
    engine = make_engine(f"sqlite:///{workdir / 'relctl.db'}")
    migrate(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    clock = parts.pop("clock", None) or FakeClock()
    defaults = dict(store=ReleaseStore(sessions), registry=FakeRegistry(workdir), pool=FakePool(),
                    router=FakeRouter(), metrics=FakeProvider(), workdir=workdir,
                    jobs=JobRunner(JobStore(sessions), clock), champions=ChampionStore(sessions),
                    queue=VersionQueue(sessions), audit=AuditStore(sessions), clock=clock)
    return Controller(**{**defaults, **parts})


@pytest.fixture
def ctx(tmp_path) -> Controller:
    return make_controller(Path(tmp_path))
