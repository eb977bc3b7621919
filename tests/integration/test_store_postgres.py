"""The release and audit stores on a real PostgreSQL server: the SQLite store tests again
(migrations, optimistic locking, append-only events), plus what only a server database
shows: two controllers writing the same release at once, and the audit table's trigger."""
from __future__ import annotations

import itertools
import threading
from datetime import datetime, timezone

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import sessionmaker

from controller.domain.phases import Phase
from controller.store.db import make_engine, migrate
from controller.store.releases import Conflict, ReleaseStore
from tests.support.postgres import postgres  # noqa: F401
from tests.unit.test_store import (  # noqa: F401  (collected here again, against PostgreSQL)
    test_create_and_read_back, test_dedup_key_appends_once, test_events_are_append_only,
    test_request_action_and_terminal, test_stale_write_is_refused, test_unknown_release)

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
_names = itertools.count()


@pytest.fixture
def engine(postgres):  # noqa: F811
    url = postgres.create_database(f"relctl_{next(_names)}")
    engine = make_engine(url)
    migrate(engine)
    migrate(engine)  # idempotent
    assert {"releases", "events", "deployments", "audit_records", "registry_seen"} <= set(
        inspect(engine).get_table_names())
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine) -> ReleaseStore:
    return ReleaseStore(sessionmaker(engine, expire_on_commit=False))


def test_concurrent_writers_one_wins(engine) -> None:
    """Two controllers (separate engines, as after a failover) save the same version at once."""
    first = ReleaseStore(sessionmaker(engine, expire_on_commit=False))
    second = ReleaseStore(sessionmaker(make_engine(engine.url.render_as_string(hide_password=False)),
                                       expire_on_commit=False))
    r = first.create("m", "2", "1", {}, NOW)
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def write(store: ReleaseStore, phase: Phase) -> None:
        barrier.wait()
        try:
            store.save(r, r.evolve(phase=phase), [dict(kind="transition", reason=phase.value)], NOW)
            outcomes.append(phase.value)
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=write, args=(s, p)) for s, p in ((first, Phase.QUANTIZING),
                                                                         (second, Phase.ABORTED))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == 2 and outcomes.count("conflict") == 1
    winner = next(o for o in outcomes if o != "conflict")
    assert first.get(r.id).phase.value == winner
    assert [e["reason"] for e in first.events(r.id) if e["kind"] == "transition"] == [winner]


def test_audit_records_are_append_only(engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO audit_records (at, model, release_id, version, track, mode, "
                          "request_sha256, response_sha256, status) "
                          "VALUES (now(), 'm', 'rel-1', '2', 'stable', 'live', :h, :h, 200)"),
                     {"h": "ab" * 32})
    for statement in ("UPDATE audit_records SET status = 500", "DELETE FROM audit_records"):
        with pytest.raises(DatabaseError, match="append-only"):
            with engine.begin() as conn:
                conn.execute(text(statement))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT status FROM audit_records")).scalar_one() == 200
