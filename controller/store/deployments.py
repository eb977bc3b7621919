"""Model servers started by pools, so a restarted controller adopts them instead of starting twice."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.store.models import DeploymentRow, utcnow


class DeploymentStore:
    def __init__(self, sessions: sessionmaker[Session]):
        self._sessions = sessions

    def get(self, key: str) -> DeploymentRow | None:
        with self._sessions() as s:
            row = s.get(DeploymentRow, key)
            if row is not None:
                s.expunge(row)
            return row

    def put(self, key: str, **fields) -> None:
        with self._sessions.begin() as s:
            row = s.get(DeploymentRow, key)
            if row is None:
                s.add(DeploymentRow(id=key, created_at=utcnow(), **{"detail": {}, **fields}))
            else:
                for name, value in fields.items():
                    setattr(row, name, value)

    def live(self, pool: str) -> list[DeploymentRow]:
        with self._sessions() as s:
            rows = list(s.scalars(select(DeploymentRow).where(
                DeploymentRow.pool == pool, DeploymentRow.state.in_(["starting", "ready"]))))
            for row in rows:
                s.expunge(row)
            return rows
