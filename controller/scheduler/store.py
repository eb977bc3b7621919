"""Evaluation runs and the per-model lock, in the controller's database.

`evaluation_runs` is the history (`relctl evals history`); its unique (model, scheduled_for)
makes a scheduled fire time run once even when two controller replicas, or a scheduler
restarted mid-fire, both fire it. `evaluation_locks` holds one row per model with an owner and
an expiry: an evaluation runs only while it holds its model's lock, so two never run at once;
a holder that died leaves a lock that expires after the policy's `timeout_seconds`.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import JSON, DateTime, String, Text, UniqueConstraint, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from controller.store.models import Base

PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED, SKIPPED = (
    "pending", "running", "succeeded", "failed", "cancelled", "skipped")


class EvaluationRunRow(Base):
    __tablename__ = "evaluation_runs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[str] = mapped_column(String(40), default="")
    trigger: Mapped[str] = mapped_column(String(20))                     # schedule | manual
    scheduled_for: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    state: Mapped[str] = mapped_column(String(20))
    owner: Mapped[str] = mapped_column(String(120), default="")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    figures: Mapped[dict] = mapped_column(JSON, default=dict)            # per suite: accuracy, compliance, items
    drift: Mapped[dict] = mapped_column(JSON, default=dict)              # the comparison with the baseline
    mlflow_run_id: Mapped[str] = mapped_column(String(64), default="")
    reason: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (UniqueConstraint("model", "scheduled_for", name="uq_evaluation_fire_time"),)


class EvaluationLockRow(Base):
    __tablename__ = "evaluation_locks"

    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    owner: Mapped[str] = mapped_column(String(120))
    run_id: Mapped[str] = mapped_column(String(40))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class EvaluationRun:
    id: str
    model: str
    version: str
    trigger: str
    state: str
    started_at: datetime
    scheduled_for: datetime | None = None
    finished_at: datetime | None = None
    owner: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    drift: dict[str, Any] = field(default_factory=dict)
    mlflow_run_id: str = ""
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        def iso(t: datetime | None) -> str | None:
            return t.isoformat() if t else None
        return {"id": self.id, "model": self.model, "version": self.version, "trigger": self.trigger,
                "state": self.state, "scheduled_for": iso(self.scheduled_for), "started_at": iso(self.started_at),
                "finished_at": iso(self.finished_at), "owner": self.owner, "figures": self.figures,
                "drift": self.drift, "mlflow_run_id": self.mlflow_run_id, "reason": self.reason}


def _utc(dt: datetime | None) -> datetime | None:
    return dt if dt is None or dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _run(r: EvaluationRunRow) -> EvaluationRun:
    return EvaluationRun(r.id, r.model, r.version, r.trigger, r.state, _utc(r.started_at), _utc(r.scheduled_for),
                         _utc(r.finished_at), r.owner, dict(r.figures or {}), dict(r.drift or {}),
                         r.mlflow_run_id, r.reason)


def new_run_id() -> str:
    return "ev-" + uuid.uuid4().hex[:16]


class EvaluationStore:
    def __init__(self, sessions: sessionmaker[Session]):
        self._sessions = sessions

    # ---- runs --------------------------------------------------------------------

    def claim(self, model: str, trigger: str, owner: str, now: datetime,
              scheduled_for: datetime | None = None) -> EvaluationRun | None:
        """A new pending run; None when this scheduled fire time was claimed already (elsewhere or before)."""
        row = EvaluationRunRow(id=new_run_id(), model=model, trigger=trigger, scheduled_for=scheduled_for,
                               state=PENDING, owner=owner, started_at=now, figures={}, drift={})
        try:
            with self._sessions.begin() as s:
                s.add(row)
        except IntegrityError:
            return None
        return _run(row)

    def update(self, run_id: str, **fields: Any) -> None:
        with self._sessions.begin() as s:
            s.execute(update(EvaluationRunRow).where(EvaluationRunRow.id == run_id).values(**fields))

    def finish(self, run_id: str, state: str, now: datetime, **fields: Any) -> None:
        """The run's outcome, written once: a run already finished (e.g. cancelled) keeps its state."""
        with self._sessions.begin() as s:
            s.execute(update(EvaluationRunRow)
                      .where(EvaluationRunRow.id == run_id, EvaluationRunRow.state.in_((PENDING, RUNNING)))
                      .values(state=state, finished_at=now, **fields))

    def get(self, run_id: str) -> EvaluationRun | None:
        with self._sessions() as s:
            row = s.get(EvaluationRunRow, run_id)
            return _run(row) if row else None

    def history(self, model: str, limit: int = 50) -> list[EvaluationRun]:
        """Newest first."""
        with self._sessions() as s:
            rows = s.scalars(select(EvaluationRunRow).where(EvaluationRunRow.model == model)
                             .order_by(EvaluationRunRow.started_at.desc()).limit(limit))
            return [_run(r) for r in rows]

    def first_succeeded(self, model: str, version: str) -> EvaluationRun | None:
        """The version's first finished evaluation: its baseline when the build left no figures."""
        with self._sessions() as s:
            row = s.scalars(select(EvaluationRunRow).where(
                EvaluationRunRow.model == model, EvaluationRunRow.version == version,
                EvaluationRunRow.state == SUCCEEDED).order_by(EvaluationRunRow.started_at).limit(1)).first()
            return _run(row) if row else None

    def abandon_stale(self, now: datetime, older_than_s: float = 60.0) -> list[str]:
        """Runs left pending/running by a controller that stopped (no live lock): recorded as failed."""
        cutoff = now - timedelta(seconds=older_than_s)
        with self._sessions.begin() as s:
            live = select(EvaluationLockRow.run_id).where(EvaluationLockRow.expires_at >= now)
            stale = list(s.scalars(select(EvaluationRunRow.id).where(
                EvaluationRunRow.state.in_((PENDING, RUNNING)), EvaluationRunRow.started_at < cutoff,
                EvaluationRunRow.id.not_in(live))))
            if stale:
                s.execute(update(EvaluationRunRow).where(EvaluationRunRow.id.in_(stale)).values(
                    state=FAILED, finished_at=now, reason="abandoned: its controller stopped before it finished"))
        return stale

    # ---- the per-model lock ------------------------------------------------------

    def acquire(self, model: str, run_id: str, owner: str, now: datetime, ttl_s: float) -> bool:
        """Take the model's lock for `ttl_s` seconds; False while another run holds it."""
        expires = now + timedelta(seconds=ttl_s)
        with self._sessions.begin() as s:
            taken = s.execute(update(EvaluationLockRow).where(
                EvaluationLockRow.model == model,
                or_(EvaluationLockRow.expires_at < now, EvaluationLockRow.run_id == run_id))
                .values(owner=owner, run_id=run_id, expires_at=expires))
            if taken.rowcount == 1:
                return True
            if s.get(EvaluationLockRow, model) is not None:
                return False
        try:
            with self._sessions.begin() as s:
                s.add(EvaluationLockRow(model=model, owner=owner, run_id=run_id, expires_at=expires))
            return True
        except IntegrityError:        # another replica inserted it first
            return False

    def holder(self, model: str) -> tuple[str, datetime] | None:
        with self._sessions() as s:
            row = s.get(EvaluationLockRow, model)
            return (row.run_id, _utc(row.expires_at)) if row else None

    def release(self, model: str, run_id: str) -> None:
        with self._sessions.begin() as s:
            s.execute(delete(EvaluationLockRow).where(EvaluationLockRow.model == model,
                                                      EvaluationLockRow.run_id == run_id))
