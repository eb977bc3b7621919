"""Hash chains on a real SQLite store: events chained per release by the flush listener,
tampering found by `verify_all`, concurrent writers never fork a chain."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from controller.store.chain import GENESIS
from controller.store.db import make_engine, migrate
from controller.store.models import EventRow, ReleaseRow
from controller.store.verify import verify_all
from tests.support.chain_writers import race_chain_writers

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


def add_release(engine, release_id: str) -> None:
    with sessionmaker(engine).begin() as s:
        s.add(ReleaseRow(id=release_id, model=f"m-{release_id}", candidate_version="2", policy={},
                         phase="pending", phase_started_at=NOW, status={}, reason="", row_version=1))


def append(engine, release_id: str, *reasons: str, at: datetime = NOW) -> None:
    with sessionmaker(engine).begin() as s:
        for reason in reasons:
            s.add(EventRow(release_id=release_id, at=at, kind="info", reason=reason, data={"n": (1, 2)}))


def allow_tampering(conn) -> None:
    """What an attacker with the database file does first: drop the append-only triggers."""
    for verb in ("update", "delete"):
        conn.execute(text(f"DROP TRIGGER IF EXISTS events_no_{verb}"))


def events(engine, release_id: str) -> list:
    with engine.connect() as conn:
        return conn.execute(text("SELECT id, seq, prev_sha256, record_sha256, reason FROM events "
                                 "WHERE release_id = :r ORDER BY id"), {"r": release_id}).all()


def test_events_are_chained_per_release_in_insertion_order(engine):
    add_release(engine, "a")
    add_release(engine, "b")
    append(engine, "a", "one", "two")
    append(engine, "b", "other")
    append(engine, "a", "three")
    rows = events(engine, "a")
    assert [(r.seq, r.reason) for r in rows] == [(1, "one"), (2, "two"), (3, "three")]
    assert rows[0].prev_sha256 == GENESIS
    assert [r.prev_sha256 for r in rows[1:]] == [r.record_sha256 for r in rows[:-1]]
    assert events(engine, "b")[0].prev_sha256 == GENESIS
    report = verify_all(engine)
    assert report["ok"] and report["events"]["rows"] == 4 and report["events"]["chains"] == 2


@pytest.mark.parametrize("tamper, reason", [
    ("UPDATE events SET reason = 'forged' WHERE seq = 2", "was changed"),
    ("DELETE FROM events WHERE seq = 2", "seq jumps from 1 to 3"),
    ("UPDATE events SET data = '{\"n\": [1, 3]}' WHERE seq = 3", "was changed"),
    ("DELETE FROM events WHERE seq = 1", "seq jumps from 0 to 2"),
])
def test_tampering_is_reported_at_the_first_break(engine, tamper, reason):
    add_release(engine, "a")
    add_release(engine, "b")
    append(engine, "a", "one", "two", "three", "four")
    append(engine, "b", "untouched")
    with engine.begin() as conn:
        allow_tampering(conn)
        conn.execute(text(tamper.replace("WHERE", "WHERE release_id = 'a' AND")))
    report = verify_all(engine)
    assert not report["ok"]
    (first,) = report["events"]["breaks"]                 # release b's chain is intact
    assert first["chain"] == "a" and reason in first["reason"]


def test_a_forged_row_with_a_recomputed_own_hash_still_breaks_the_next_link(engine):
    add_release(engine, "a")
    append(engine, "a", "one", "two", "three")
    with engine.begin() as conn:
        allow_tampering(conn)
        conn.execute(text("UPDATE events SET reason = 'forged', record_sha256 = :h WHERE seq = 2"), {"h": "f" * 64})
    (first,) = verify_all(engine)["events"]["breaks"]
    assert first["seq"] == 2          # its own hash no longer matches its contents


def test_since_starts_each_chain_at_its_first_row_from_then(engine):
    add_release(engine, "a")
    append(engine, "a", "old", at=NOW - timedelta(days=30))
    append(engine, "a", "new", "newer", at=NOW)
    with engine.begin() as conn:
        allow_tampering(conn)
        conn.execute(text("DELETE FROM events WHERE seq = 1"))      # retention removed the old one
    assert not verify_all(engine)["ok"]
    report = verify_all(engine, since=NOW - timedelta(days=1))
    assert report["ok"] and report["events"]["rows"] == 2


def test_rows_from_before_the_chain_are_counted_as_unchained(engine):
    add_release(engine, "a")
    with engine.begin() as conn:      # as written before migration 0003a
        conn.execute(text("INSERT INTO events (release_id, at, kind, reason, data) "
                          "VALUES ('a', '2025-01-01 00:00:00', 'info', 'legacy', '{}')"))
    append(engine, "a", "chained")
    report = verify_all(engine)
    assert report["ok"] and report["events"]["unchained"] == 1 and report["events"]["rows"] == 1


def test_a_refused_transaction_leaves_no_hole(engine):
    add_release(engine, "a")
    append(engine, "a", "one")
    with pytest.raises(IntegrityError):
        with sessionmaker(engine).begin() as s:
            s.add(EventRow(release_id="a", kind="info", reason="dup", dedup_key="k"))
            s.add(EventRow(release_id="a", kind="info", reason="dup", dedup_key="k"))
    append(engine, "a", "two")
    assert [r.seq for r in events(engine, "a")] == [1, 2] and verify_all(engine)["ok"]


def test_concurrent_writers_on_separate_connections_never_fork_the_chain(engine, tmp_path):
    """Appends (no lock of their own) and optimistic saves race on one release."""
    add_release(engine, "a")
    writers, per_writer = 4, 15
    assert race_chain_writers(f"sqlite:///{tmp_path / 'r.db'}", "a", writers, per_writer) == []
    assert [r.seq for r in events(engine, "a")] == list(range(1, writers * per_writer + 1))
    assert verify_all(engine)["ok"]
