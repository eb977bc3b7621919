"""Hash chains over the two append-only tables, so that a changed, removed or inserted row shows.

Every chained row carries `seq` (its place in its chain), `prev_sha256` (the previous row's
hash; GENESIS for the first) and `record_sha256` = SHA-256 of the previous hash and the row's
canonical JSON. `controller.store.verify` walks the chains again.

- events: one chain per release, hashed here in a `before_flush` listener, so every writer of
  EventRow is covered without changing it. The previous hash is read under the release row's
  lock (see `_lock_chain`).
- audit_records: one chain per gateway stream (one gateway process); the stream has a single
  writer, the gateway's AuditSink, which hashes its rows itself (controller/gateway/audit.py).
"""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from datetime import datetime, timezone

from sqlalchemy import event, inspect, select, update
from sqlalchemy.orm import Session

from controller.store.models import EventRow, ReleaseRow

GENESIS = "0" * 64

EVENT_FIELDS = ("release_id", "seq", "at", "kind", "from_phase", "to_phase", "reason", "data", "dedup_key")
AUDIT_FIELDS = ("stream", "seq", "at", "model", "release_id", "version", "track", "mode", "status",
                "request_sha256", "response_sha256", "dropped")


def utc(dt: datetime) -> datetime:
    """Aware UTC; a naive time (SQLite gives those back) is taken as UTC."""
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def _canonical(value):
    if isinstance(value, datetime):
        return utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")     # microseconds: what both databases keep
    return value


def record_hash(prev: str, fields: dict) -> str:
    """SHA-256 over the previous hash and the row's fields as sorted, compact JSON."""
    body = json.dumps({k: _canonical(v) for k, v in fields.items()}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev}\n{body}".encode()).hexdigest()


def row_fields(row, names: tuple[str, ...]) -> dict:
    get = row.get if isinstance(row, dict) else (lambda n: getattr(row, n))
    return {n: get(n) for n in names}


def _json_roundtrip(data) -> dict:
    # Hash what the JSON column will give back (tuples become lists, int keys strings).
    return json.loads(json.dumps({} if data is None else data))


def _prepare(row: EventRow) -> None:
    """Column defaults are applied after this listener runs: fill them in so they are hashed."""
    row.at = utc(row.at or datetime.now(timezone.utc))
    row.reason = "" if row.reason is None else row.reason
    row.data = _json_roundtrip(row.data)


def _lock_chain(conn, release_id: str) -> tuple[int, str]:
    """Take the release row's write lock, then read its chain's head.

    A no-op UPDATE of the release row: on PostgreSQL it row-locks the release (the lock
    ReleaseStore.save's optimistic UPDATE already holds, so saves and appended events of one
    release queue behind each other; READ COMMITTED, the default, lets the following SELECT
    see what the previous holder committed). On SQLite any write takes the database's one
    write lock, so nothing else can append between our read and our insert.
    """
    releases, events = ReleaseRow.__table__, EventRow.__table__
    conn.execute(update(releases).where(releases.c.id == release_id)
                 .values(row_version=releases.c.row_version))
    head = conn.execute(select(events.c.seq, events.c.record_sha256)
                        .where(events.c.release_id == release_id, events.c.seq.is_not(None))
                        .order_by(events.c.seq.desc()).limit(1)).first()
    return (head.seq, head.record_sha256) if head else (0, GENESIS)


@event.listens_for(Session, "before_flush")
def _chain_new_events(session: Session, _flush_context, _instances) -> None:
    new = [o for o in session.new if isinstance(o, EventRow)]
    if not new:
        return
    new.sort(key=lambda o: inspect(o).insert_order)          # the order they were added
    by_release: dict[str, list[EventRow]] = defaultdict(list)
    for row in new:
        by_release[row.release_id].append(row)
    conn = session.connection()
    for release_id in sorted(by_release, key=str):           # one lock order: no deadlock between flushes
        seq, prev = _lock_chain(conn, release_id)
        for row in by_release[release_id]:
            _prepare(row)
            seq += 1
            row.seq, row.prev_sha256 = seq, prev
            row.record_sha256 = prev = record_hash(prev, row_fields(row, EVENT_FIELDS))
