"""SQLAlchemy models: the store is the source of truth for releases.

Events and audit records are append-only: nothing in relctl updates or deletes them.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (JSON, BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint,
                        text)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# One active release per model, enforced by a partial unique index (SQLite and PostgreSQL).
ACTIVE_SQL = "phase NOT IN ('succeeded', 'rolled_back', 'failed', 'aborted')"


class Base(DeclarativeBase):
    pass


class ReleaseRow(Base):
    __tablename__ = "releases"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), index=True)
    candidate_version: Mapped[str] = mapped_column(String(40))
    stable_version: Mapped[str | None] = mapped_column(String(40), nullable=True)
    policy: Mapped[dict] = mapped_column(JSON)                 # the validated policy, frozen at creation
    phase: Mapped[str] = mapped_column(String(20), index=True)
    step_index: Mapped[int] = mapped_column(Integer, default=0)
    phase_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    paused_from: Mapped[str | None] = mapped_column(String(20), nullable=True)
    requested_action: Mapped[str | None] = mapped_column(String(20), nullable=True)
    status: Mapped[dict] = mapped_column(JSON, default=dict)   # build, deployment, analysis state
    reason: Mapped[str] = mapped_column(Text, default="")
    row_version: Mapped[int] = mapped_column(Integer, default=1)  # optimistic lock
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    settled: Mapped[bool] = mapped_column(Boolean, default=True)  # effects of a terminal phase applied

    __table_args__ = (Index("uq_one_active_release_per_model", "model", unique=True,
                            sqlite_where=text(ACTIVE_SQL), postgresql_where=text(ACTIVE_SQL)),)


class EventRow(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    kind: Mapped[str] = mapped_column(String(40))             # transition, verdict, action, info
    from_phase: Mapped[str | None] = mapped_column(String(20), nullable=True)
    to_phase: Mapped[str | None] = mapped_column(String(20), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    dedup_key: Mapped[str | None] = mapped_column(String(120), nullable=True)
    # Hash chain per release (migration 0003a), filled in by controller/store/chain.py.
    seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    prev_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    record_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (UniqueConstraint("release_id", "dedup_key", name="uq_event_dedup"),)


class DeploymentRow(Base):
    """A model server a pool started; adopted again after a controller restart."""
    __tablename__ = "deployments"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)   # pool:model:version
    pool: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(40))
    artifact: Mapped[str] = mapped_column(Text)                     # local dir served
    url: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[str] = mapped_column(String(20))                  # starting, ready, stopped, failed
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditRow(Base):
    """SHA-256 of each request and response body that passed through the gateway."""
    __tablename__ = "audit_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    model: Mapped[str] = mapped_column(String(200), index=True)
    release_id: Mapped[str] = mapped_column(String(40), default="", index=True)
    version: Mapped[str] = mapped_column(String(40))
    track: Mapped[str] = mapped_column(String(20))
    mode: Mapped[str] = mapped_column(String(10))          # live | shadow
    status: Mapped[int] = mapped_column(Integer)
    request_sha256: Mapped[str] = mapped_column(String(64), index=True)
    response_sha256: Mapped[str] = mapped_column(String(64))
    # Hash chain per gateway stream (migration 0003a), filled in by controller/gateway/audit.py.
    stream: Mapped[str | None] = mapped_column(String(80), nullable=True)
    seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    prev_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    record_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    dropped: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # requests lost before it


class RegistryCursorRow(Base):
    """Model versions relctl has already seen, so polling never starts a release twice."""
    __tablename__ = "registry_seen"

    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[str] = mapped_column(String(40), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class JobRow(Base):
    """Long work (quantization, evaluation) started once and observed by later ticks."""
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(120), primary_key=True)        # <release>:<kind>
    release_id: Mapped[str] = mapped_column(String(40), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(20))                         # running, succeeded, failed, cancelled
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    owner: Mapped[str] = mapped_column(String(120))
    progress: Mapped[dict] = mapped_column(JSON, default=dict)
    result: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class QueuedVersionRow(Base):
    """A registry version that arrived while its model had an active release: released afterwards."""
    __tablename__ = "queued_versions"

    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[str] = mapped_column(String(40), primary_key=True)
    policy: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(20), default="queued")       # queued, started, superseded
    release_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ChampionRow(Base):
    """The champion relctl last set per model, so a human move of the alias is noticed."""
    __tablename__ = "champions"

    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[str] = mapped_column(String(40))
    history: Mapped[list] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
