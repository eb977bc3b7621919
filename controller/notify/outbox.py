"""The notification outbox: one row per (event, subscriber), written in the event's transaction.

`install(sessions, settings, base_url)` hooks the store's sessionmaker: after each flush that
inserted events, a row per interested subscriber is inserted through the same connection, so
an event and its notifications commit (or roll back, e.g. a deduplicated event) together, and
nothing written is lost on a restart. No writer of events changes: the listener sees every
EventRow, like the hash chain's (controller/store/chain.py). `after_flush` rather than
`before_flush`: the event's id and chain position are known then and go into the body.

The body is frozen at enqueue time (the bytes that will be signed on every attempt); the
delivery id is fixed too, so a retry carries the same id and a receiver can drop a repeat.
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, String, Text, event, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from controller.notify.payloads import body_for
from controller.notify.settings import NotificationSettings
from controller.store.chain import utc
from controller.store.models import Base, EventRow, ReleaseRow, utcnow

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


class OutboxRow(Base):
    __tablename__ = "notification_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)   # delivery order
    delivery_id: Mapped[str] = mapped_column(String(36), unique=True)
    subscriber: Mapped[str] = mapped_column(String(64))
    release_id: Mapped[str] = mapped_column(String(40))
    event_id: Mapped[int] = mapped_column(Integer)
    event_kind: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)                   # the exact JSON text signed and sent
    state: Mapped[str] = mapped_column(String(12), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(120), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (Index("ix_outbox_due", "state", "next_attempt_at"),
                      Index("ix_outbox_order", "subscriber", "release_id", "id"))


def install(sessions: sessionmaker[Session], settings: NotificationSettings, base_url: str) -> None:
    """Fill the outbox from every event written through `sessions` (idempotent per sessionmaker)."""
    if getattr(sessions, "_relctl_outbox", None) is not None:
        sessions._relctl_outbox = (settings, base_url)          # type: ignore[attr-defined]
        return
    sessions._relctl_outbox = (settings, base_url)              # type: ignore[attr-defined]

    @event.listens_for(sessions, "after_flush")
    def _enqueue(session: Session, _ctx) -> None:
        new = [o for o in session.new if isinstance(o, EventRow)]
        if new:
            enqueue(session, new, *sessions._relctl_outbox)     # type: ignore[attr-defined]


def enqueue(session: Session, rows: list[EventRow], settings: NotificationSettings, base_url: str) -> int:
    """Insert the outbox rows for `rows` (just flushed: ids known) through the session's connection."""
    if not settings.subscribers:
        return 0
    conn = session.connection()
    releases: dict[str, dict] = {}
    values = []
    for row in sorted(rows, key=lambda r: r.id):
        release = releases.get(row.release_id) or releases.setdefault(row.release_id, _release(conn, row.release_id))
        at = utc(row.at or utcnow())                       # due from the moment it happened
        ev = {"id": row.id, "seq": row.seq, "at": at.isoformat(), "kind": row.kind,
              "from_phase": row.from_phase, "to_phase": row.to_phase, "reason": row.reason or "",
              "data": row.data or {}}
        for sub in settings.subscribers:
            if sub.wants(row.kind, release["model"]):
                body = json.dumps(body_for(sub.format, ev, release, base_url), sort_keys=True, ensure_ascii=False)
                values.append(dict(delivery_id=str(uuid.uuid4()), subscriber=sub.name, release_id=row.release_id,
                                   event_id=row.id, event_kind=row.kind, body=body, state=PENDING, attempts=0,
                                   next_attempt_at=at, last_error="", created_at=utcnow()))
    if values:
        conn.execute(insert(OutboxRow), values)
    return len(values)


def _release(conn, release_id: str) -> dict:
    t = ReleaseRow.__table__
    row = conn.execute(select(t.c.id, t.c.model, t.c.candidate_version, t.c.stable_version, t.c.phase)
                       .where(t.c.id == release_id)).first()
    if row is None:
        return {"id": release_id, "model": "", "candidate_version": "", "stable_version": None, "phase": None}
    return dict(row._mapping)
