"""Notifications on a real PostgreSQL server: two controllers' deliverers (separate engines)
race over the same outbox; each delivery reaches the receiver once, in order per release."""
from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from controller.domain.phases import Phase
from controller.notify import start_notifications
from controller.notify.outbox import OutboxRow
from controller.notify.settings import NotificationSettings, Subscriber
from controller.store.db import make_engine, migrate
from controller.store.releases import ReleaseStore
from tests.support.notify_receiver import NotificationReceiver
from tests.support.postgres import postgres  # noqa: F401

pytestmark = pytest.mark.integration
SECRET = "pg-s3cret"


def test_two_deliverers_never_send_one_delivery_twice(postgres, monkeypatch):  # noqa: F811
    monkeypatch.setenv("NOTIFY_PG_SECRET", SECRET)
    url = postgres.create_database("relctl_notify")
    rx = NotificationReceiver(SECRET).start()
    settings = NotificationSettings(subscribers=[Subscriber(name="hook", url=rx.url("/hook"),
                                                            secret_env="NOTIFY_PG_SECRET")])
    engines = [make_engine(url), make_engine(url)]
    migrate(engines[0])
    sessions = [sessionmaker(e, expire_on_commit=False) for e in engines]
    deliverers = [start_notifications(s, settings, "http://relctl.test") for s in sessions]
    store = ReleaseStore(sessions[0])
    now = datetime.now(timezone.utc)
    for i in range(6):
        r = store.create(f"m{i}", "2", "1", {}, now)
        for phase in (Phase.QUANTIZING, Phase.EVALUATING, Phase.FAILED):
            r = store.save(r, r.evolve(phase=phase), [dict(kind="transition", from_phase=r.phase.value,
                                                           to_phase=phase.value, reason="x")], now)
    with sessions[0]() as s:
        total = s.scalar(select(func.count()).select_from(OutboxRow))
    assert total == 24
    barrier = threading.Barrier(2)

    def run(d):
        barrier.wait()
        for _ in range(12):
            d.deliver_due()

    try:
        threads = [threading.Thread(target=run, args=(d,)) for d in deliverers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        rx.wait_count(total, timeout=10)
    finally:
        rx.stop()
        for e in engines:
            e.dispose()
    ids = [r.delivery_id for r in rx.received]
    assert len(ids) == len(set(ids)) == total and all(r.signature_ok for r in rx.received)
    for i in range(6):
        seqs = [r.body["event"]["seq"] for r in rx.received if r.body["release"]["model"] == f"m{i}"]
        assert seqs == [1, 2, 3, 4]
