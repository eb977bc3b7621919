"""Audit trail: SHA-256 of every request and response body, appended to the store in batches.

Hashes are of the exact bytes that passed, so a client holding a body can prove it was
(or was not) served. Bodies themselves are never stored; anything the gateway logs about
a request's content goes through the redaction hook first.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections import deque
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Callable

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


class AuditSink:
    """Buffers records in memory and flushes them to AuditRow in batches from a worker thread.

    Without a database URL only the recent-records ring is kept (tests, ad-hoc runs).
    """

    def __init__(self, db_url: str | None, *, batch_size: int = 500, interval_s: float = 1.0,
                 max_pending: int = 100_000, recent: int = 1000, on_drop: Callable[[int], None] = lambda n: None):
        self._engine = _make_engine(db_url) if db_url else None
        self._batch_size, self._interval = batch_size, interval_s
        self._max_pending = max_pending
        self._pending: list[AuditRecord] = []
        self.recent: deque[AuditRecord] = deque(maxlen=recent)
        self._on_drop = on_drop
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self.written = 0

    def add(self, record: AuditRecord) -> None:
        self.recent.append(record)
        if self._engine is None:
            return
        if len(self._pending) >= self._max_pending:
            self._on_drop(1)          # the store is far behind: never let memory grow without bound
            return
        self._pending.append(record)
        if len(self._pending) >= self._batch_size:
            self._wake.set()

    async def start(self) -> None:
        if self._engine is not None:
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="audit-flusher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.flush()
        if self._engine is not None:
            self._engine.dispose()

    async def flush(self) -> None:
        if not self._pending or self._engine is None:
            return
        batch, self._pending = self._pending, []
        try:
            await asyncio.to_thread(_insert, self._engine, batch)
            self.written += len(batch)
        except Exception as exc:  # a store outage must not take the data plane down
            log.error("audit flush failed", extra={"records": len(batch), "error": str(exc)})
            self._on_drop(len(batch))

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self._interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            await self.flush()


def _make_engine(db_url: str):
    from sqlalchemy import create_engine

    # The table comes from the store's migrations; the gateway only appends to it.
    return create_engine(db_url, pool_pre_ping=True)


def _insert(engine, batch: list[AuditRecord]) -> None:
    from sqlalchemy import insert

    from controller.store.models import AuditRow

    with engine.begin() as conn:
        conn.execute(insert(AuditRow), [asdict(r) for r in batch])
