"""Read side of the audit trail the gateway appends to (request/response SHA-256 per answer).

Each row also names its hash chain (gateway `stream`, `seq`, `record_sha256`); `dropped` > 0
marks a gap record: that many requests before it could not be recorded. See
controller/store/verify.py for checking the chains."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.store.models import AuditRow


class AuditStore:
    def __init__(self, sessions: sessionmaker[Session]):
        self._sessions = sessions

    def query(self, *, model: str | None = None, release_id: str | None = None, sha256: str | None = None,
              limit: int = 100) -> list[dict]:
        q = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
        if model:
            q = q.where(AuditRow.model == model)
        if release_id:
            q = q.where(AuditRow.release_id == release_id)
        if sha256:
            q = q.where((AuditRow.request_sha256 == sha256) | (AuditRow.response_sha256 == sha256))
        with self._sessions() as s:
            return [dict(at=r.at.isoformat(), model=r.model, release_id=r.release_id, version=r.version,
                         track=r.track, mode=r.mode, status=r.status, request_sha256=r.request_sha256,
                         response_sha256=r.response_sha256, stream=r.stream, seq=r.seq,
                         record_sha256=r.record_sha256, dropped=r.dropped) for r in s.scalars(q)]
