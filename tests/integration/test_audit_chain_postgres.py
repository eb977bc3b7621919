"""Hash chains on a real PostgreSQL server: controllers on separate connections appending to one
release at once never fork its chain; tampering (triggers disabled, as a superuser could) is found;
the gateway's audit rows survive the store being down through the spill file."""
from __future__ import annotations

import asyncio
import itertools
from datetime import datetime, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from controller.gateway.audit import AuditRecord, AuditSink
from controller.store.db import make_engine, migrate
from controller.store.models import EventRow, ReleaseRow
from controller.store.verify import verify_all
from tests.support.chain_writers import race_chain_writers
from tests.support.postgres import postgres  # noqa: F401

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
_names = itertools.count()


@pytest.fixture
def url(postgres):  # noqa: F811
    url = postgres.create_database(f"chain_{next(_names)}")
    engine = make_engine(url)
    migrate(engine)
    with sessionmaker(engine).begin() as s:
        s.add(ReleaseRow(id="a", model="m", candidate_version="2", policy={}, phase="pending",
                         phase_started_at=NOW, status={}, reason="", row_version=1))
    engine.dispose()
    return url


def test_concurrent_controllers_never_fork_a_release_chain(url):
    writers, per_writer = 6, 15
    assert race_chain_writers(url, "a", writers, per_writer) == []
    engine = make_engine(url)
    with engine.connect() as conn:
        seqs = conn.execute(text("SELECT seq FROM events WHERE release_id = 'a' ORDER BY id")).scalars().all()
    assert seqs == list(range(1, writers * per_writer + 1))
    report = verify_all(engine)
    assert report["ok"] and report["events"]["rows"] == writers * per_writer
    engine.dispose()


def test_an_event_changed_behind_the_triggers_back_is_found(url):
    engine = make_engine(url)
    with sessionmaker(engine).begin() as s:
        s.add_all([EventRow(release_id="a", at=NOW, kind="transition", reason=r, data={}) for r in "xyz"])
    with engine.begin() as conn:
        with pytest.raises(Exception, match="append-only"):
            with conn.begin_nested():
                conn.execute(text("UPDATE events SET reason = 'forged' WHERE seq = 2"))
        conn.execute(text("ALTER TABLE events DISABLE TRIGGER USER"))
        conn.execute(text("UPDATE events SET reason = 'forged' WHERE seq = 2"))
    (first,) = verify_all(engine)["events"]["breaks"]
    assert (first["chain"], first["seq"]) == ("a", 2) and "changed" in first["reason"]
    engine.dispose()


def test_gateway_audit_survives_the_store_being_down(postgres, tmp_path):  # noqa: F811
    name = f"chain_{next(_names)}"
    url = postgres.url(name)                    # the database does not exist yet: the store is down
    sink = AuditSink(url, batch_size=10_000, interval_s=3600, spill_dir=tmp_path, stream="gw-1")
    records = [AuditRecord(at=NOW, model="chat", release_id="rel-1", version="2", track="stable", mode="live",
                           status=200, request_sha256=f"{i:064x}", response_sha256="e" * 64) for i in range(3)]

    async def scenario() -> None:
        await sink.start()
        sink.add(records[0])
        await sink.flush()                      # refused: spilled
        postgres.create_database(name)
        migrate(make_engine(url))
        sink.add(records[1])
        sink.add(records[2])
        await sink.flush()                      # replayed, then the new batch
        await sink.stop()

    asyncio.run(scenario())
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT seq, request_sha256 FROM audit_records ORDER BY seq")).all()
    assert [(r.seq, r.request_sha256) for r in rows] == [(i + 1, f"{i:064x}") for i in range(3)]
    assert verify_all(engine)["ok"] and sink.spilled == 1
    engine.dispose()
