"""The release store on a real SQLite database: migrations, optimistic locking, append-only events."""
from datetime import datetime, timezone

import pytest
from sqlalchemy import inspect
from sqlalchemy.orm import sessionmaker

from controller.domain.phases import Phase
from controller.domain.release import UserAction
from controller.store.db import make_engine, migrate
from controller.store.releases import Conflict, NotFound, ReleaseStore

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def store(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    migrate(engine)
    migrate(engine)  # idempotent
    tables = set(inspect(engine).get_table_names())
    assert {"releases", "events", "deployments", "audit_records", "registry_seen"} <= tables
    return ReleaseStore(sessionmaker(engine, expire_on_commit=False))


def test_create_and_read_back(store):
    r = store.create("m", "2", "1", {"name": "default"}, NOW)
    assert store.get(r.id).phase == Phase.PENDING
    assert [e["kind"] for e in store.events(r.id)] == ["created"]
    with pytest.raises(Conflict, match="already has an active release"):
        store.create("m", "3", "1", {}, NOW)


def test_stale_write_is_refused(store):
    r = store.create("m", "2", "1", {}, NOW)
    store.save(r, r.evolve(phase=Phase.QUANTIZING), [dict(kind="transition", reason="go")], NOW)
    with pytest.raises(Conflict):
        store.save(r, r.evolve(phase=Phase.FAILED), [dict(kind="transition", reason="stale")], NOW)
    assert store.get(r.id).phase == Phase.QUANTIZING
    assert [e["reason"] for e in store.events(r.id)][-1] == "go"   # the refused write left no event


def test_request_action_and_terminal(store):
    r = store.create("m", "2", "1", {}, NOW)
    assert store.request_action(r.id, UserAction.ABORT, NOW).requested_action == UserAction.ABORT
    current = store.get(r.id)
    store.save(current, current.evolve(phase=Phase.ABORTED), [], NOW)
    with pytest.raises(Conflict, match="already ended"):
        store.request_action(r.id, UserAction.PAUSE, NOW)


def test_unknown_release(store):
    with pytest.raises(NotFound):
        store.get("rel-nope")


def test_dedup_key_appends_once(store):
    r = store.create("m", "2", "1", {}, NOW)
    assert store.append_event(r.id, "info", "x", {}, NOW, dedup_key="k")
    assert not store.append_event(r.id, "info", "x", {}, NOW, dedup_key="k")
    assert len(store.events(r.id)) == 2


def test_events_are_append_only(store):
    from sqlalchemy import text
    from sqlalchemy.exc import DatabaseError
    r = store.create("m", "2", "1", {}, NOW)
    with pytest.raises(DatabaseError, match="append-only"):
        with store._sessions.begin() as s:
            s.execute(text("UPDATE events SET reason = 'rewritten'"))
    with pytest.raises(DatabaseError, match="append-only"):
        with store._sessions.begin() as s:
            s.execute(text("DELETE FROM events"))
    assert store.events(r.id)[0]["reason"] != "rewritten"


def _canary(store):
    r = store.create("m", "2", "1", {}, NOW)
    return store.save(r, r.evolve(phase=Phase.CANARY, status={"n": 0}), [dict(kind="transition", reason="go")], NOW)


def test_running_figures_are_written_behind_in_batches_and_read_back_meanwhile(store):
    r = _canary(store)                       # just written
    other = ReleaseStore(store._sessions)    # a second process reading the database
    r = store.save(r, r.evolve(status={"n": 1}), [], NOW, volatile=True)
    assert store.get(r.id).status == {"n": 1} and store.list()[0].status == {"n": 1}   # this process: newest
    assert other.get(r.id).status == {"n": 0}          # not yet in the database
    assert store.flush_figures() == 0                  # written less than volatile_write_seconds ago
    assert store.flush_figures(older_than=0) == 1
    stored = other.get(r.id)
    assert stored.status == {"n": 1} and stored.row_version == r.row_version   # figures only: no new version
    assert store.flush_figures(older_than=0) == 0      # nothing new to write


def test_a_decision_or_an_event_is_never_deferred(store):
    r = _canary(store)
    other = ReleaseStore(store._sessions)
    r = store.save(r, r.evolve(status={"n": 1}), [dict(kind="info", reason="x")], NOW, volatile=True)
    assert other.get(r.id).status == {"n": 1}
    store.save(r, r.evolve(step_index=1), [], NOW)
    assert other.get(r.id).step_index == 1


def test_a_user_action_keeps_the_unwritten_figures_and_another_writer_wins(store):
    r = _canary(store)
    r = store.save(r, r.evolve(status={"n": 1}), [], NOW, volatile=True)
    store.request_action(r.id, UserAction.PAUSE, NOW)       # through this store: based on the newest figures
    stored = ReleaseStore(store._sessions).get(r.id)
    assert stored.requested_action == UserAction.PAUSE and stored.status == {"n": 1}
    r = store.save(store.get(r.id), stored.evolve(status={"n": 5}), [], NOW, volatile=True)  # kept here
    other = ReleaseStore(store._sessions)
    other.request_action(r.id, UserAction.ABORT, NOW)       # another process writes the row
    assert store.flush_figures(older_than=0) == 1           # tried, and left the newer row alone
    fresh = store.get(r.id)
    assert fresh.requested_action == UserAction.ABORT and fresh.status == {"n": 1}   # its write wins
    with pytest.raises(Conflict):
        store.save(r, r.evolve(status={"n": 6}), [], NOW)   # and a save based on the stale figures is refused
