"""PostgreSQL restarted under the controller mid-release: restarted between two ticks, the next tick
reconnects (the engine's pool_pre_ping drops the dead pooled connections); down during a tick, that
tick fails without writing anything and the next ones go on; the release ends with every event
once and its hash chain unbroken.

Real: the PostgreSQL server (stopped with a fast shutdown, started again on the same data
folder and port), the store, the loop. In-memory: pool, router, registry and traffic.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker

from controller.domain.phases import Phase
from controller.reconcile.context import Controller
from controller.reconcile.jobs import JobRunner
from controller.reconcile.loop import reconcile
from controller.store.audit import AuditStore
from controller.store.db import make_engine, migrate
from controller.store.jobs import JobStore
from controller.store.registry_state import ChampionStore, VersionQueue
from controller.store.releases import ReleaseStore
from controller.store.verify import verify_all
from tests.conftest import FakeClock
from tests.fakes import FakePool, FakeProvider, FakeRegistry, FakeRouter
from tests.support.postgres import PostgresServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
POLICY = {"name": "outage", "quantize": {"enabled": False}, "shadow": {"duration_seconds": 0},
          "canary": {"steps": [20, 50], "step_seconds": 10},
          "analysis": {"settle_seconds": 0, "min_requests": 20, "min_soak_seconds": 5, "latency_metrics": []}}


class RestartablePostgres(PostgresServer):
    """Started again on its existing data folder: initdb runs only the first time."""

    def _run(self, cmd: list[str], check: bool) -> None:
        if cmd[0].endswith("initdb") and (self.workdir / "data" / "PG_VERSION").exists():
            return
        super()._run(cmd, check)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def pg():
    # Not under pytest's tmp_path: any other pytest session starting meanwhile makes its base folder
    # private again (0700), and as root the server runs as `postgres`, which must reach its data to restart.
    folder = Path(tempfile.mkdtemp(prefix="relctl-outage-pg-"))
    os.chmod(folder, 0o755)
    server = RestartablePostgres(folder).start()
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


def _controller(sessions: sessionmaker, workdir: Path) -> Controller:
    clock = FakeClock()
    return Controller(store=ReleaseStore(sessions), registry=FakeRegistry(workdir), pool=FakePool(),
                      router=FakeRouter(), metrics=FakeProvider(), workdir=workdir,
                      jobs=JobRunner(JobStore(sessions), clock), champions=ChampionStore(sessions),
                      queue=VersionQueue(sessions), audit=AuditStore(sessions), clock=clock)


def _tick(ctx: Controller, release_id: str):
    ctx.jobs.join(30)                   # a download job is a real thread: let it finish between fast ticks
    ctx.clock.advance(2)
    share = ctx.router.weight("chat")
    ctx.metrics.add("stable", round(50 * (100 - share) / 100))
    ctx.metrics.add("candidate", round(50 * share / 100))
    return reconcile(ctx, release_id)


def test_postgres_restart_mid_release_loses_no_event(pg, tmp_path):
    engine = make_engine(pg.create_database("outage"))
    migrate(engine)
    ctx = _controller(sessionmaker(engine, expire_on_commit=False), tmp_path)
    r = ctx.store.create("chat", "2", "1", POLICY, ctx.clock())
    while r.phase != Phase.CANARY:
        r = _tick(ctx, r.id)
        assert ctx.clock.now.hour == 0, r.reason
    pg.restart()                                              # between two ticks: the pooled connections die
    r = _tick(ctx, r.id)                                      # pre-ping finds them dead and reconnects
    while not (r.phase == Phase.CANARY and r.step_index == 1):
        r = _tick(ctx, r.id)
        assert ctx.clock.now.hour == 0, r.reason                  # within an hour of simulated time
    before = ctx.store.events(r.id)

    pg.stop()
    with pytest.raises(OperationalError):
        _tick(ctx, r.id)                                      # the store is down: this tick decides nothing
    pg.start()

    while not (r.phase == Phase.SUCCEEDED and r.settled):
        r = _tick(ctx, r.id)                                  # reconnects through the pool's pre-ping
        assert ctx.clock.now.hour == 0, r.reason
    events = ctx.store.events(r.id)
    assert events[:len(before)] == before                     # nothing written before the restart is lost
    transitions = [(e["to_phase"], e["data"]["step"]) for e in events if e["kind"] == "transition"]
    assert transitions == [("deploying", 0), ("canary", 0), ("canary", 1), ("promoting", 1), ("succeeded", 1)]
    report = verify_all(engine)
    assert report["ok"], report
    assert report["events"]["rows"] == len(events)
    engine.dispose()
