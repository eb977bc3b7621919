"""Notifications end to end: a real SQLite store, the outbox filled by the store's own writes,
and receivers on 127.0.0.1 (aiohttp): signed, in order, no duplicate across a restart of the
deliverer; a dead or slow receiver does not slow down the writes of events."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from controller.domain.phases import Phase
from controller.notify import start_notifications
from controller.notify.deliver import Deliverer
from controller.notify.outbox import OutboxRow
from controller.notify.settings import NotificationSettings, Subscriber
from controller.ports import free_port
from controller.store.db import make_engine, migrate
from controller.store.releases import ReleaseStore
from tests.support.notify_receiver import NotificationReceiver

pytestmark = pytest.mark.integration
SECRET = "integration-s3cret"
PATH = [Phase.QUANTIZING, Phase.EVALUATING, Phase.DEPLOYING, Phase.SHADOW, Phase.CANARY]


def now() -> datetime:
    return datetime.now(timezone.utc)


def open_store(db) -> tuple[ReleaseStore, sessionmaker]:
    """A fresh engine and sessionmaker on the same file: what a restarted controller opens."""
    engine = make_engine(f"sqlite:///{db}")
    migrate(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    return ReleaseStore(sessions), sessions


def settings_for(hook: str, slack: str, timeout: float = 2.0) -> NotificationSettings:
    return NotificationSettings(
        subscribers=[Subscriber(name="hook", url=hook, secret_env="NOTIFY_TEST_SECRET"),
                     Subscriber(name="chat", format="slack", url=slack)],
        public_url="http://relctl.test:8000", timeout_seconds=timeout, backoff_seconds=0.05,
        backoff_max_seconds=0.2)


def walk(store: ReleaseStore, model: str, phases: list[Phase]) -> str:
    r = store.create(model, "2", "1", {}, now())
    for phase in phases:
        new = r.evolve(phase=phase)
        r = store.save(r, new, [dict(kind="transition", from_phase=r.phase.value, to_phase=phase.value,
                                     reason=f"to {phase.value}", data={"step": 0})], now())
    return r.id


def pump(deliverer: Deliverer):
    return lambda: (deliverer.deliver_due(), time.sleep(0.02))


def outbox_states(sessions) -> dict[str, int]:
    with sessions() as s:
        return dict(s.execute(select(OutboxRow.state, func.count()).group_by(OutboxRow.state)).all())


def test_signed_in_order_without_duplicates_across_a_restart(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTIFY_TEST_SECRET", SECRET)
    rx = NotificationReceiver(SECRET).start()
    try:
        settings = settings_for(rx.url("/hook"), rx.url("/slack"))
        store, sessions = open_store(tmp_path / "r.db")
        first = start_notifications(sessions, settings, "http://unused")
        a = walk(store, "alpha", PATH[:3])             # 4 events each for hook and chat
        rx.fail_next = 3                                # a flaky receiver: retried with backoff
        first.deliver_due()                             # part of the work, then the "crash"
        b = walk(store, "beta", PATH)                   # written while no deliverer runs
        del first, store, sessions

        store, sessions = open_store(tmp_path / "r.db")     # the restarted controller
        second = start_notifications(sessions, settings, "http://unused")
        store.append_event(b, "manual_rollback", "alias moved back by hand", {}, now())
        with sessions() as s:
            total = s.scalar(select(func.count()).select_from(OutboxRow))
        rx.wait_count(total, pump=pump(second))
        for _ in range(3):
            second.deliver_due()                            # nothing left: nothing sent again
    finally:
        rx.stop()
    assert outbox_states(sessions) == {"delivered": total}
    ids = [r.delivery_id for r in rx.received]
    assert len(ids) == len(set(ids)) == total               # no delivery id twice
    hooks = [r for r in rx.received if r.path == "/hook"]
    assert hooks and all(r.signature_ok for r in hooks), [r.error for r in hooks if not r.signature_ok]
    for release in (a, b):                                  # each release's events in the order written
        seqs = [r.body["event"]["seq"] for r in hooks if r.body["release"]["id"] == release]
        assert seqs == sorted(seqs) and seqs[0] == 1 and len(seqs) == len(set(seqs))
        texts = [r.body["text"] for r in rx.received if r.path == "/slack" and release in r.body["text"]]
        assert texts[0].startswith("Release started") and len(texts) == len(seqs)
    rolled = [r.body for r in hooks if r.body["event"]["kind"] == "manual_rollback"]
    assert rolled[0]["links"]["page"] == f"http://relctl.test:8000/releases/{b}/page"


def test_a_dead_and_a_slow_receiver_do_not_slow_down_event_writes(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTIFY_TEST_SECRET", SECRET)
    slow = NotificationReceiver(SECRET, delay_s=3.0).start()
    dead = f"http://127.0.0.1:{free_port()}/hook"          # nothing listens: connection refused
    store, sessions = open_store(tmp_path / "r.db")
    deliverer = start_notifications(sessions, settings_for(dead, slow.url("/slack"), timeout=0.5), "http://x")
    walk(store, "warm-up", [])                              # first write: connection and statement caches
    stop, rounds = threading.Event(), []

    def scheduler_job():                                    # what the scheduler's own job does
        while not stop.is_set():
            rounds.append(deliverer.deliver_due())
            time.sleep(0.05)

    worker = threading.Thread(target=scheduler_job, daemon=True)
    worker.start()
    try:
        times = []
        for i in range(8):
            t0 = time.monotonic()
            walk(store, f"m{i}", PATH[:2])                  # 3 events, 3 transactions
            times.append(time.monotonic() - t0)
            time.sleep(0.1)
    finally:
        stop.set()
        worker.join(10)
        slow.stop()
    # A write that waited for a send would take the 0.5 s timeout (slow receiver) at least.
    assert sorted(times)[len(times) // 2] < 0.2 and max(times) < 1.0, times
    assert sum(len(r.retried) for r in rounds) >= 2         # the deliverer was trying meanwhile
    with sessions() as s:
        errors = {row.subscriber: row.last_error for row in s.scalars(select(OutboxRow).where(OutboxRow.attempts > 0))}
    assert "ConnectError" in errors["hook"] and "Timeout" in errors["chat"]
    assert outbox_states(sessions).get("delivered", 0) == 0
