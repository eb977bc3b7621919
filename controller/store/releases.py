"""The release store: releases with optimistic locking, append-only events."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from controller.domain.phase_table import TERMINAL
from controller.domain.phases import Phase
from controller.domain.release import Release, UserAction
from controller.store.models import EventRow, ReleaseRow


class NotFound(LookupError):
    pass


class Conflict(RuntimeError):
    """Another writer changed the release first, or the request clashes with its state."""


def _utc(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def to_release(row: ReleaseRow) -> Release:
    return Release(
        id=row.id, model=row.model, candidate_version=row.candidate_version,
        stable_version=row.stable_version, phase=Phase(row.phase),
        phase_started_at=_utc(row.phase_started_at), step_index=row.step_index,
        paused_from=Phase(row.paused_from) if row.paused_from else None,
        requested_action=UserAction(row.requested_action) if row.requested_action else None,
        status=dict(row.status or {}), reason=row.reason, row_version=row.row_version,  # type: ignore[arg-type]
        settled=bool(row.settled),
    )


def _row(s: Session, release_id: str) -> ReleaseRow:
    row = s.get(ReleaseRow, release_id)
    if row is None:
        raise NotFound(f"no release {release_id!r}")
    return row


class ReleaseStore:
    def __init__(self, sessions: sessionmaker[Session]):
        self._sessions = sessions
        self._policies: dict[str, dict] = {}

    def create(self, model: str, candidate: str, stable: str | None, policy: dict, now: datetime,
               reason: str = "") -> Release:
        with self._sessions.begin() as s:
            active = s.scalar(select(ReleaseRow.id).where(
                ReleaseRow.model == model, ReleaseRow.phase.not_in([p.value for p in TERMINAL])))
            if active:
                raise Conflict(f"model {model!r} already has an active release {active}")
            row = ReleaseRow(id=f"rel-{uuid.uuid4().hex[:12]}", model=model, candidate_version=candidate,
                             stable_version=stable, policy=policy, phase=Phase.PENDING.value, step_index=0,
                             phase_started_at=now, status={}, reason=reason, row_version=1,
                             created_at=now, updated_at=now, settled=True)
            s.add(row)
            try:
                s.flush()
            except IntegrityError:  # the unique partial index: another writer created one just now
                raise Conflict(f"model {model!r} already has an active release") from None
            s.add(EventRow(release_id=row.id, at=now, kind="created", to_phase=Phase.PENDING.value,
                           reason=reason or f"release of {model} version {candidate}",
                           data={"candidate": candidate, "stable": stable}, dedup_key="created"))
            return to_release(row)

    def get(self, release_id: str) -> Release:
        with self._sessions() as s:
            return to_release(_row(s, release_id))

    def policy_of(self, release_id: str) -> dict:
        """The policy frozen at creation (it never changes, so it is read once per process; read-only)."""
        if release_id not in self._policies:
            with self._sessions() as s:
                self._policies[release_id] = dict(_row(s, release_id).policy)
        return self._policies[release_id]

    def to_reconcile(self) -> list[str]:
        """Ids of releases a tick must look at: active ones, and ended ones whose effects are not yet applied."""
        q = select(ReleaseRow.id).where(ReleaseRow.phase.not_in([p.value for p in TERMINAL])
                                        | (ReleaseRow.settled.is_(False)))
        with self._sessions() as s:
            return list(s.scalars(q))

    def count_by_phase(self) -> dict[str, int]:
        with self._sessions() as s:
            rows = s.execute(select(ReleaseRow.phase, func.count()).group_by(ReleaseRow.phase))
            return {phase: n for phase, n in rows}

    def mark_settled(self, release_id: str) -> None:
        with self._sessions.begin() as s:
            s.execute(update(ReleaseRow).where(ReleaseRow.id == release_id).values(settled=True))

    def list(self, model: str | None = None, active_only: bool = False) -> list[Release]:
        q = select(ReleaseRow).order_by(ReleaseRow.created_at.desc())
        if model:
            q = q.where(ReleaseRow.model == model)
        if active_only:
            q = q.where(ReleaseRow.phase.not_in([p.value for p in TERMINAL]))
        with self._sessions() as s:
            return [to_release(r) for r in s.scalars(q)]

    def save(self, old: Release, new: Release, events: list[dict], now: datetime) -> Release:
        """Write `new` if nobody wrote since `old` was read; append its events in the same transaction."""
        values = dict(phase=new.phase.value, step_index=new.step_index, phase_started_at=new.phase_started_at,
                      paused_from=new.paused_from.value if new.paused_from else None,
                      requested_action=new.requested_action.value if new.requested_action else None,
                      status=new.status, reason=new.reason, stable_version=new.stable_version,
                      row_version=old.row_version + 1, updated_at=now, settled=new.phase not in TERMINAL)
        with self._sessions.begin() as s:
            done = s.execute(update(ReleaseRow).where(ReleaseRow.id == old.id,
                                                      ReleaseRow.row_version == old.row_version).values(**values))
            if done.rowcount != 1:
                raise Conflict(f"release {old.id} changed while it was being reconciled")
            for ev in events:
                s.add(EventRow(release_id=old.id, at=now, **ev))
        return new.evolve(row_version=old.row_version + 1, settled=new.phase not in TERMINAL)

    def request_action(self, release_id: str, action: UserAction, now: datetime) -> Release:
        for _ in range(5):  # retry: the reconcile loop may write between our read and write
            current = self.get(release_id)
            if current.phase in TERMINAL:
                raise Conflict(f"release {release_id} already ended in {current.phase}")
            try:
                return self.save(current, current.evolve(requested_action=action),
                                 [dict(kind="action", reason=f"{action.value} requested", data={})], now)
            except Conflict:
                continue
        raise Conflict(f"release {release_id} is busy; try again")

    def append_event(self, release_id: str, kind: str, reason: str, data: dict, now: datetime,
                     dedup_key: str | None = None) -> bool:
        """Append one event; with a dedup_key an event already recorded is not written twice."""
        try:
            with self._sessions.begin() as s:
                s.add(EventRow(release_id=release_id, at=now, kind=kind, reason=reason, data=data,
                               dedup_key=dedup_key))
            return True
        except IntegrityError:
            return False

    def events(self, release_id: str) -> list[dict]:
        self.get(release_id)
        with self._sessions() as s:
            rows = s.scalars(select(EventRow).where(EventRow.release_id == release_id).order_by(EventRow.id))
            return [dict(id=r.id, at=_utc(r.at).isoformat(), kind=r.kind, from_phase=r.from_phase,
                         to_phase=r.to_phase, reason=r.reason, data=r.data) for r in rows]
