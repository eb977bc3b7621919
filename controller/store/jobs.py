"""Long work started once and observed: its state (running, progress, result, error) in the store."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from controller.store.models import JobRow

RUNNING, SUCCEEDED, FAILED, CANCELLED = "running", "succeeded", "failed", "cancelled"


@dataclass(frozen=True)
class Job:
    id: str
    release_id: str
    kind: str
    state: str
    attempt: int
    owner: str
    progress: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    started_at: datetime | None = None
    updated_at: datetime | None = None


def job_id(release_id: str, kind: str) -> str:
    return f"{release_id}:{kind}"


def _utc(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _job(row: JobRow) -> Job:
    return Job(row.id, row.release_id, row.kind, row.state, row.attempt, row.owner, dict(row.progress or {}),
               dict(row.result or {}), row.error, _utc(row.started_at), _utc(row.updated_at))


class JobStore:
    def __init__(self, sessions: sessionmaker[Session]):
        self._sessions = sessions

    def get(self, release_id: str, kind: str) -> Job | None:
        with self._sessions() as s:
            row = s.get(JobRow, job_id(release_id, kind))
            return _job(row) if row else None

    def of_release(self, release_id: str) -> list[Job]:
        with self._sessions() as s:
            return [_job(r) for r in s.scalars(select(JobRow).where(JobRow.release_id == release_id))]

    def running(self) -> list[Job]:
        with self._sessions() as s:
            return [_job(r) for r in s.scalars(select(JobRow).where(JobRow.state == RUNNING))]

    def start(self, release_id: str, kind: str, owner: str, now: datetime) -> Job:
        """Record a new attempt of the job as running by `owner` (the previous attempt is replaced)."""
        key = job_id(release_id, kind)
        with self._sessions.begin() as s:
            row = s.get(JobRow, key)
            if row is None:
                row = JobRow(id=key, release_id=release_id, kind=kind, attempt=0)
                s.add(row)
            row.attempt = (row.attempt or 0) + 1
            row.state, row.owner, row.progress, row.result, row.error = RUNNING, owner, {}, {}, ""
            row.started_at = row.updated_at = now
            s.flush()
            return _job(row)

    def update(self, key: str, attempt: int, now: datetime, **fields: Any) -> bool:
        """Write progress or the outcome of one attempt; False when a newer attempt or a cancel replaced it."""
        with self._sessions.begin() as s:
            done = s.execute(update(JobRow).where(JobRow.id == key, JobRow.attempt == attempt,
                                                  JobRow.state == RUNNING).values(updated_at=now, **fields))
            return done.rowcount == 1
