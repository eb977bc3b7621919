"""The release store: releases with optimistic locking, append-only events."""
from __future__ import annotations

import math
import threading
import time
import uuid
from contextlib import nullcontext
from datetime import datetime, timezone

from sqlalchemy import bindparam, func, select, update
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


# Every column but the policy (frozen at creation, read once by policy_of): what a tick reads.
_TABLE = ReleaseRow.__table__
_TICK_COLUMNS = [c for c in _TABLE.c if c.name != "policy"]
# Built once: SQLAlchemy then reuses their compiled form (every tick runs one or both).
_VERSION = select(_TABLE.c.row_version).where(_TABLE.c.id == bindparam("release_id"))
_TO_RECONCILE = select(_TABLE.c.id, _TABLE.c.row_version).where(
    _TABLE.c.phase.not_in([p.value for p in TERMINAL]) | (_TABLE.c.settled.is_(False)))
_GET = select(*_TICK_COLUMNS).where(_TABLE.c.id == bindparam("release_id"))
_SAVE = update(_TABLE).where(_TABLE.c.id == bindparam("release_id"),
                             _TABLE.c.row_version == bindparam("read_version"))


class ReleaseStore:
    def __init__(self, sessions: sessionmaker[Session], volatile_write_seconds: float = 5.0):
        self._sessions = sessions
        self._policies: dict[str, dict] = {}
        # Write-behind of the judge's running figures (see save, flush_figures): the newest
        # release kept per id, and when each release's row was last written by this process.
        self.volatile_write_seconds = volatile_write_seconds
        self._unwritten: dict[str, Release] = {}
        self._written_at: dict[str, float] = {}
        # SQLite has one write lock; writers that collide sleep in its busy handler (1, 2, 5 …
        # 100 ms). Taking turns here instead keeps many workers' saves at their real cost.
        self._engine = sessions.kw["bind"]
        sqlite = self._engine.dialect.name == "sqlite"
        self._write_turn = threading.Lock() if sqlite else nullcontext()

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

    def get(self, release_id: str, known_version: int | None = None) -> Release:
        """The release as stored (or its newer unwritten figures).

        `known_version`: the row version the caller read just before (to_reconcile's batch read);
        when the figures kept here are of that version, no query is made -- at a thousand canaries
        a query per judgment is a third of the tick. Reading the version a moment earlier is safe:
        a decision saved on it loses the optimistic lock if the row moved on, and figures of an old
        version are dropped at the next read."""
        newer = self._unwritten.get(release_id)
        if newer is not None and known_version is not None and newer.row_version == known_version:
            return newer
        # A Core select, not the ORM: every tick of every release reads its row.
        with self._engine.connect() as conn:
            if newer is not None:
                if conn.execute(_VERSION, {"release_id": release_id}).scalar() == newer.row_version:
                    return newer
                self._unwritten.pop(release_id, None)   # written since (e.g. a user action): that one wins
            row = conn.execute(_GET, {"release_id": release_id}).one_or_none()
        if row is None:
            raise NotFound(f"no release {release_id!r}")
        return to_release(row)  # type: ignore[arg-type]

    def policy_of(self, release_id: str) -> dict:
        """The policy frozen at creation (it never changes, so it is read once per process; read-only)."""
        if release_id not in self._policies:
            with self._sessions() as s:
                self._policies[release_id] = dict(_row(s, release_id).policy)
        return self._policies[release_id]

    def to_reconcile(self) -> dict[str, int]:
        """Releases a tick must look at -- active ones, and ended ones whose effects are not yet
        applied -- with their row versions (one query for all; see get's `known_version`)."""
        with self._engine.connect() as conn:
            return dict(conn.execute(_TO_RECONCILE).all())  # type: ignore[arg-type]

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
            return [self._newest(to_release(r)) for r in s.scalars(q)]

    def _newest(self, stored: Release) -> Release:
        """The figures kept here for a release, if nothing was written to its row since."""
        newer = self._unwritten.get(stored.id)
        return newer if newer is not None and newer.row_version == stored.row_version else stored

    def save(self, old: Release, new: Release, events: list[dict], now: datetime, volatile: bool = False) -> Release:
        """Write `new` if nobody wrote since `old` was read; append its events in the same transaction.

        `volatile`: nothing decided changed (phase, step, action, window), only the judge's running
        figures (verdict, counts, health timers). Those are kept here — get() returns them — and
        written in batches by flush_figures(), at most `volatile_write_seconds` late; a crash loses
        at most those seconds of figures, which the next reading recomputes from the cumulative
        counters. At a thousand canaries judged every second, one write transaction per judgment
        is what would limit the controller."""
        if volatile and not events:
            self._unwritten[old.id] = new.evolve(row_version=old.row_version)
            return self._unwritten[old.id]
        values = dict(phase=new.phase.value, step_index=new.step_index, phase_started_at=new.phase_started_at,
                      paused_from=new.paused_from.value if new.paused_from else None,
                      requested_action=new.requested_action.value if new.requested_action else None,
                      status=new.status, reason=new.reason, stable_version=new.stable_version,
                      row_version=old.row_version + 1, updated_at=now, settled=new.phase not in TERMINAL)
        with self._write_turn, self._sessions.begin() as s:
            done = s.connection().execute(_SAVE, {**values, "release_id": old.id, "read_version": old.row_version})
            if done.rowcount != 1:
                raise Conflict(f"release {old.id} changed while it was being reconciled")
            for ev in events:
                s.add(EventRow(release_id=old.id, at=now, **ev))
        self._unwritten.pop(old.id, None)
        if new.phase in TERMINAL:
            self._written_at.pop(old.id, None)
        else:
            self._written_at[old.id] = time.monotonic()
        return new.evolve(row_version=old.row_version + 1, settled=new.phase not in TERMINAL)

    def flush_figures(self, older_than: float | None = None) -> int:
        """Write, in one transaction, the figures kept for releases last written more than
        `older_than` (default `volatile_write_seconds`) ago; returns how many were written.

        The row's version is not bumped (no decision changed) and a row that changed since
        (a user action, a decision) is left as it is: its write already holds newer figures
        or wins over them."""
        limit = self.volatile_write_seconds if older_than is None else older_than
        now, wall = time.monotonic(), datetime.now(timezone.utc)
        due = [r for r in list(self._unwritten.values()) if now - self._written_at.get(r.id, -math.inf) >= limit]
        if not due:
            return 0
        with self._write_turn, self._sessions.begin() as s:
            conn = s.connection()
            for r in due:
                conn.execute(_SAVE, {"status": r.status, "reason": r.reason, "updated_at": wall,
                                     "release_id": r.id, "read_version": r.row_version})
        for r in due:
            self._written_at[r.id] = now
            if self._unwritten.get(r.id) is r:     # not replaced meanwhile: the row holds it now
                self._unwritten.pop(r.id, None)
        return len(due)

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
