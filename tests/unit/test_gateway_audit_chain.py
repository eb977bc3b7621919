"""The gateway's audit sink on a real SQLite store: chained rows, spill and replay while the
store is down, and every lost request written into the chain as a gap."""
from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

import pytest
from sqlalchemy import text

from controller.gateway.audit import AuditRecord, AuditSink
from controller.store.db import make_engine, migrate
from controller.store.verify import verify_all


def record(i: int) -> AuditRecord:
    return AuditRecord(at=datetime(2026, 1, 1, 0, 0, i % 60, i, tzinfo=timezone.utc), model="chat",
                       release_id="rel-1", version="2", track="candidate", mode="live", status=200,
                       request_sha256=f"{i:064x}", response_sha256="f" * 64)


@pytest.fixture
def db(tmp_path):
    """A store that is "down" (no tables yet) until `up()` migrates it."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = make_engine(url)

    class Db:
        def up(self):
            migrate(engine)

        def rows(self):
            with engine.connect() as conn:
                return conn.execute(text("SELECT seq, mode, dropped, request_sha256 FROM audit_records "
                                         "ORDER BY seq")).all()

    db = Db()
    db.url, db.engine, db.spill = url, engine, tmp_path / "spill"
    yield db
    engine.dispose()


def sink(db, **kw) -> AuditSink:
    return AuditSink(db.url, batch_size=10_000, interval_s=3600, spill_dir=db.spill, **kw)


async def run(s: AuditSink, *steps) -> None:
    await s.start()
    for step in steps:
        step()
        await s.flush()
    await s.stop()


def test_records_of_one_gateway_form_one_chain(db):
    db.up()
    s = sink(db, stream="gw-a")
    asyncio.run(run(s, lambda: [s.add(record(i)) for i in range(3)], lambda: s.add(record(3))))
    assert [r.seq for r in db.rows()] == [1, 2, 3, 4]
    report = verify_all(db.engine)
    assert report["ok"] and report["audit_records"]["heads"].keys() == {"gw-a"}
    assert not list(db.spill.glob("*.jsonl"))          # an empty spill file is removed at stop


def test_store_down_spills_then_replays_in_chain_order(db):
    s = sink(db, stream="gw-a")
    dropped: list[int] = []
    s._on_drop = dropped.append
    asyncio.run(run(s, lambda: [s.add(record(i)) for i in range(2)],     # store down: spilled
                    lambda: s.add(record(2)),                            # still down: spilled after
                    db.up,                                               # back: replayed first
                    lambda: s.add(record(3))))
    assert [r.request_sha256[-1] for r in db.rows()] == ["0", "1", "2", "3"]
    assert s.spilled == 3 and s.written == 1 and dropped == []
    assert verify_all(db.engine)["ok"]


def test_full_buffer_is_written_into_the_chain_as_a_gap(db):
    db.up()
    s = sink(db, stream="gw-a", max_pending=2)
    dropped: list[int] = []
    s._on_drop = dropped.append
    asyncio.run(run(s, lambda: [s.add(record(i)) for i in range(5)], lambda: s.add(record(5))))
    rows = db.rows()
    assert [(r.mode, r.dropped) for r in rows] == [("gap", 3), ("live", 0), ("live", 0), ("live", 0)]
    report = verify_all(db.engine)
    assert report["ok"] and [g["dropped"] for g in report["audit_records"]["gaps"]] == [3]
    assert sum(dropped) == 3


def test_store_and_spill_both_failing_leaves_a_gap_not_a_hole(db):
    s = sink(db, stream="gw-a", max_spill_bytes=10)          # too small for any row: spilling fails
    asyncio.run(run(s, lambda: [s.add(record(i)) for i in range(4)], db.up, lambda: s.add(record(4))))
    assert [(r.seq, r.mode, r.dropped) for r in db.rows()] == [(1, "gap", 4), (2, "live", 0)]
    assert verify_all(db.engine)["ok"]


def test_a_crashed_gateways_spill_file_is_replayed_by_the_next_one(db):
    crashed = sink(db, stream="gw-old")

    async def crash() -> None:
        await crashed.start()
        crashed.add(record(0))
        await crashed.flush()                  # store down: spilled
        crashed._spill._fh.close()             # the process dies: its lock goes with it

    asyncio.run(crash())
    db.up()
    asyncio.run(run(sink(db, stream="gw-new")))
    assert [r.request_sha256[-1] for r in db.rows()] == ["0"]
    assert not list(db.spill.glob("*.jsonl")) and verify_all(db.engine)["ok"]


def test_a_spill_file_edited_on_disk_fails_verification(db):
    crashed = sink(db, stream="gw-old")

    async def crash() -> None:
        await crashed.start()
        for i in range(3):
            crashed.add(record(i))
        await crashed.flush()
        crashed._spill._fh.close()

    asyncio.run(crash())
    path = db.spill / "gw-old.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    lines[1]["status"] = 500                    # rewrite what was served
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    db.up()
    asyncio.run(run(sink(db, stream="gw-new")))
    (first,) = verify_all(db.engine)["audit_records"]["breaks"]
    assert (first["chain"], first["seq"]) == ("gw-old", 2) and "changed" in first["reason"]


def test_without_a_store_only_the_recent_ring_is_kept():
    s = AuditSink(None)
    asyncio.run(run(s, lambda: s.add(record(0))))
    assert len(s.recent) == 1 and s.written == 0
