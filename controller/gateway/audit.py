"""Audit trail: SHA-256 of every request and response body, appended to the store in batches.

Hashes are of the exact bytes that passed, so a client holding a body can prove it was
(or was not) served. Bodies themselves are never stored; anything the gateway logs about
a request's content goes through the redaction hook first.

The records of one gateway process form one hash chain (its `stream`): each row carries the
previous row's hash and its own (controller/store/chain.py), computed in the flusher thread,
never on the request path. Nothing is lost silently: a batch the store refuses is spilled to a
local file (audit_spill.py) and replayed first when the store answers again; records that
cannot be kept at all (memory buffer full, or store and spill file both failing) are counted
and the count is written into the chain as a `gap` record.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import secrets
import socket
from collections import deque
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from controller.gateway.audit_spill import SpillFile, default_spill_dir, replay_orphans

log = logging.getLogger(__name__)

Redactor = Callable[[str], str]

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_LONG_NUMBER = re.compile(r"\+?\d[\d ().-]{6,}\d")     # phone, card, IBAN-like digit runs


def default_redact(text: str) -> str:
    """Mask e-mail addresses and long digit runs before text reaches a log line."""
    return _LONG_NUMBER.sub("[NUMBER]", _EMAIL.sub("[EMAIL]", text))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class AuditRecord:
    at: datetime
    model: str
    release_id: str
    version: str
    track: str
    mode: str
    status: int
    request_sha256: str
    response_sha256: str

    def to_json(self) -> dict:
        doc = asdict(self)
        doc["at"] = self.at.isoformat()
        return doc


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def default_stream() -> str:
    """One chain per process: host, pid and a random suffix (a restarted gateway starts a new one)."""
    return f"{socket.gethostname()[:50]}-{os.getpid()}-{secrets.token_hex(4)}"


class AuditChain:
    """The head of one stream's chain; rows are hashed here, the head moves only once they are kept."""

    def __init__(self, stream: str):
        from controller.store.chain import GENESIS

        self.stream, self.seq, self.prev = stream, 0, GENESIS

    def rows(self, batch: list[AuditRecord], lost: int) -> list[dict]:
        from controller.store.chain import AUDIT_FIELDS, record_hash

        records = [dict(vars(r), dropped=0) for r in batch]        # asdict() deep-copies: 10x slower
        if lost:
            records.insert(0, gap_record(lost))
        seq, prev, out = self.seq, self.prev, []
        for rec in records:
            seq += 1
            row = dict(rec, stream=self.stream, seq=seq, prev_sha256=prev)
            row["record_sha256"] = prev = record_hash(prev, {k: row[k] for k in AUDIT_FIELDS})
            out.append(row)
        return out

    def advance(self, rows: list[dict]) -> None:
        if rows:
            self.seq, self.prev = rows[-1]["seq"], rows[-1]["record_sha256"]


def gap_record(lost: int) -> dict:
    return dict(at=now_utc(), model="", release_id="", version="", track="", mode="gap", status=0,
                request_sha256="", response_sha256="", dropped=lost)


class AuditSink:
    """Buffers records in memory and flushes them to AuditRow in batches from a worker thread.

    Without a database URL only the recent-records ring is kept (tests, ad-hoc runs).
    """

    def __init__(self, db_url: str | None, *, batch_size: int = 500, interval_s: float = 1.0,
                 max_pending: int = 100_000, recent: int = 1000, on_drop: Callable[[int], None] = lambda n: None,
                 stream: str | None = None, spill_dir: str | Path | None = None,
                 max_spill_bytes: int = 256 << 20):
        self._engine = _make_engine(db_url) if db_url else None
        self._batch_size, self._interval = batch_size, interval_s
        self._max_pending = max_pending
        self._pending: list[AuditRecord] = []
        self.recent: deque[AuditRecord] = deque(maxlen=recent)
        self._on_drop = on_drop
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self.chain = AuditChain(stream or default_stream())
        self._spill_dir = Path(spill_dir) if spill_dir else (default_spill_dir(db_url) if db_url else None)
        self._max_spill = max_spill_bytes
        self._spill: SpillFile | None = None
        self._flush_lock = asyncio.Lock()
        self._lost = 0            # requests not recorded since the last gap record
        self.written = 0          # requests stored
        self.spilled = 0          # requests parked in the spill file (replayed later)

    def add(self, record: AuditRecord) -> None:
        self.recent.append(record)
        if self._engine is None:
            return
        if len(self._pending) >= self._max_pending:
            self._lost += 1           # the store is far behind: never let memory grow without bound
            self._on_drop(1)
            return
        self._pending.append(record)
        if len(self._pending) >= self._batch_size:
            self._wake.set()

    async def start(self) -> None:
        if self._engine is None:
            return
        self._spill = SpillFile(self._spill_dir, self.chain.stream, self._max_spill)
        await asyncio.to_thread(replay_orphans, self._engine, self._spill_dir, _insert_missing)
        self._stopping, self._wake = False, asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="audit-flusher")

    async def stop(self) -> None:
        if self._task is not None:
            self._stopping = True     # let a flush in progress finish: its thread cannot be cancelled
            self._wake.set()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.flush()
        if self._spill is not None:
            self._spill.close()
        if self._engine is not None:
            self._engine.dispose()

    async def flush(self) -> None:
        if self._engine is None or self._spill is None:
            return
        async with self._flush_lock:           # one chain: one batch at a time
            batch, self._pending = self._pending, []
            lost, self._lost = self._lost, 0
            if batch or lost or self._spill.pending:
                self._lost += await asyncio.to_thread(self._persist, batch, lost)

    def _persist(self, batch: list[AuditRecord], lost: int) -> int:
        """Store (or spill) one chained batch; returns how many requests could be kept nowhere."""
        rows = self.chain.rows(batch, lost)
        try:
            self._spill.replay(self._engine, _insert_missing)      # older rows first: chain order
            _insert(self._engine, rows)
            self.written += len(batch)
        except Exception as exc:  # a store outage must not take the data plane down
            try:
                self._spill.append(rows)
                self.spilled += len(batch)
                log.error("audit flush failed; records spilled to disk",
                          extra={"records": len(batch), "spill": str(self._spill.path), "error": str(exc)})
            except OSError as spill_exc:
                log.error("audit records lost: store and spill file both failed",
                          extra={"records": len(batch), "error": str(exc), "spill_error": str(spill_exc)})
                self._on_drop(len(batch))
                return len(batch) + lost        # chain head unchanged: the next flush writes the gap
        self.chain.advance(rows)
        return 0

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await asyncio.wait_for(self._wake.wait(), self._interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # never let the flusher die: the next round retries
                log.exception("audit flusher round failed")


def _make_engine(db_url: str):
    from sqlalchemy import create_engine

    # The table comes from the store's migrations; the gateway only appends to it.
    return create_engine(db_url, pool_pre_ping=True)


def _insert(engine, rows: list[dict]) -> None:
    from sqlalchemy import insert

    from controller.store.models import AuditRow

    if rows:
        with engine.begin() as conn:
            conn.execute(insert(AuditRow), rows)


def _insert_missing(engine, rows: list[dict]) -> None:
    """Replay: a crash may come between storing spilled rows and truncating the file."""
    from sqlalchemy import select

    from controller.store.models import AuditRow

    by_stream: dict[str, list[dict]] = {}
    for row in rows:
        by_stream.setdefault(row["stream"], []).append(row)
    fresh = []
    with engine.connect() as conn:
        for stream, group in by_stream.items():
            seqs = [r["seq"] for r in group]
            kept = set(conn.execute(select(AuditRow.seq, AuditRow.record_sha256).where(
                AuditRow.stream == stream, AuditRow.seq.between(min(seqs), max(seqs)))).all())
            fresh += [r for r in group if (r["seq"], r["record_sha256"]) not in kept]
    _insert(engine, fresh)
