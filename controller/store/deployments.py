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

    def move(self, src: str, dst: str, version: str) -> bool:
        """Hand a live server recorded under `src` to `dst` (as `version`), in one transaction."""
        with self._sessions.begin() as s:
            row, taken = s.get(DeploymentRow, src), s.get(DeploymentRow, dst)
            if row is None or row.state not in ("starting", "ready"):
                return False
            if taken is not None and taken.state in ("starting", "ready"):
                return False
            if taken is not None:
                s.delete(taken)
                s.flush()
            s.add(DeploymentRow(id=dst, pool=row.pool, model=row.model, version=version, artifact=row.artifact,
                                url=row.url, pid=row.pid, state=row.state, detail=dict(row.detail or {}),
                                created_at=utcnow()))
            row.state = "stopped"   # the record moved; the process lives on under `dst`
            return True

    def live(self, pool: str) -> list[DeploymentRow]:
        with self._sessions() as s:
            rows = list(s.scalars(select(DeploymentRow).where(
                DeploymentRow.pool == pool, DeploymentRow.state.in_(["starting", "ready"]))))
            for row in rows:
                s.expunge(row)
            return rows
