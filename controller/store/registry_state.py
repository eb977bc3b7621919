"""What relctl remembers about each model's registry: the champion it set, and queued versions."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from controller.store.models import ChampionRow, QueuedVersionRow


@dataclass(frozen=True)
class Champion:
    model: str
    version: str
    history: tuple[str, ...]     # versions that were champion before, oldest first


class ChampionStore:
    """The champion relctl last set (or found at first look), so a human move of the alias is noticed."""

    def __init__(self, sessions: sessionmaker[Session]):
        self._sessions = sessions

    def get(self, model: str) -> Champion | None:
        with self._sessions() as s:
            row = s.get(ChampionRow, model)
            return Champion(row.model, row.version, tuple(row.history or ())) if row else None

    def record(self, model: str, version: str, now: datetime) -> None:
        """`version` is champion now; the previous one joins the history. Idempotent."""
        with self._sessions.begin() as s:
            row = s.get(ChampionRow, model)
            if row is None:
                s.add(ChampionRow(model=model, version=version, history=[], updated_at=now))
            elif row.version != version:
                row.history = [v for v in (row.history or []) if v != version] + [row.version]
                row.version, row.updated_at = version, now


@dataclass(frozen=True)
class QueuedVersion:
    model: str
    version: str
    policy: str | None
    reason: str


class VersionQueue:
    """Versions that arrived while their model had an active release: released after it, newest first."""

    def __init__(self, sessions: sessionmaker[Session]):
        self._sessions = sessions

    def add(self, model: str, version: str, policy: str | None, reason: str, now: datetime) -> bool:
        """False when the version is already queued (webhook and poll both report it)."""
        try:
            with self._sessions.begin() as s:
                s.add(QueuedVersionRow(model=model, version=version, policy=policy, reason=reason,
                                       state="queued", queued_at=now))
            return True
        except IntegrityError:
            return False

    def queued(self, model: str) -> list[QueuedVersion]:
        """Queued versions of the model, newest version first."""
        with self._sessions() as s:
            rows = s.scalars(select(QueuedVersionRow).where(QueuedVersionRow.model == model,
                                                            QueuedVersionRow.state == "queued"))
            found = [QueuedVersion(r.model, r.version, r.policy, r.reason) for r in rows]
        return sorted(found, key=lambda q: int(q.version) if q.version.isdigit() else -1, reverse=True)

    def models(self) -> set[str]:
        with self._sessions() as s:
            return set(s.scalars(select(QueuedVersionRow.model).where(QueuedVersionRow.state == "queued")))

    def mark(self, model: str, version: str, state: str, release_id: str | None = None) -> None:
        with self._sessions.begin() as s:
            row = s.get(QueuedVersionRow, (model, version))
            if row is not None:
                row.state, row.release_id = state, release_id
