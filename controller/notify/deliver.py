"""Deliver the outbox: claim a row, send it, mark it, or schedule its retry with backoff.

Runs as its own scheduler job, never inside a tick: a dead or slow receiver costs this job
its timeouts and nothing else. Order: per subscriber and release, a row is sent only once
every earlier row of that pair is delivered (or given up), so a receiver sees a release's
events in the order they were written.

No duplicates in normal operation: a row is claimed with a conditional UPDATE (one claimer
wins, also across processes), and marked delivered by its claimer right after the answer.
At least once, not exactly once: if the process dies after the receiver got the request and
before the mark commits, the claim expires and the row is sent again with the same delivery
id. Receivers drop a delivery id they have already handled (signing.DeliveryVerifier does).
"""
from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

import httpx
from prometheus_client import Counter
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from controller.notify.outbox import DELIVERED, FAILED, PENDING, OutboxRow
from controller.notify.settings import NotificationSettings, Subscriber
from controller.notify.signing import signed_headers
from controller.store.chain import utc

log = logging.getLogger(__name__)
SENDS = Counter("relctl_notifications", "Notification sends by subscriber and outcome (delivered, retry, failed)",
                ["subscriber", "outcome"])


def backoff_seconds(attempts: int, base: float, cap: float) -> float:
    """Delay before the next try after `attempts` failed ones: base, 2·base, 4·base, … at most cap."""
    return float(min(cap, base * 2 ** max(0, attempts - 1)))


@dataclass
class RoundReport:
    delivered: list[str] = field(default_factory=list)   # delivery ids
    retried: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class Deliverer:
    def __init__(self, sessions: sessionmaker[Session], settings: NotificationSettings,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 transport: httpx.BaseTransport | None = None, owner: str | None = None):
        self._sessions, self._settings, self._clock = sessions, settings, clock
        self._subscribers = {s.name: s for s in settings.subscribers}
        self._transport = transport
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    def deliver_due(self, limit: int = 500) -> RoundReport:
        """One round: every row due now, each subscriber's in its own thread, in order.

        A failed send is a retry, not an error; the job may run as often as every second."""
        report = RoundReport()
        by_subscriber = self._due(limit)
        if not by_subscriber:
            return report
        with ThreadPoolExecutor(max_workers=min(8, len(by_subscriber)), thread_name_prefix="notify") as pool:
            for _ in pool.map(lambda item: self._deliver_all(item[0], item[1], report), by_subscriber.items()):
                pass
        return report

    def _due(self, limit: int) -> dict[str, list[OutboxRow]]:
        """Pending rows of known subscribers, oldest first, grouped by subscriber."""
        with self._sessions() as s:
            rows = s.scalars(select(OutboxRow).where(OutboxRow.state == PENDING)
                             .order_by(OutboxRow.id).limit(limit)).all()
        out: dict[str, list[OutboxRow]] = defaultdict(list)
        for row in rows:
            if row.subscriber in self._subscribers:
                out[row.subscriber].append(row)
        return out

    def _deliver_all(self, name: str, rows: list[OutboxRow], report: RoundReport) -> None:
        """In order per release: a row not due, or held by another deliverer, holds back its release's later rows."""
        sub, now, blocked = self._subscribers[name], self._clock(), set()
        with httpx.Client(timeout=self._settings.timeout_seconds, transport=self._transport) as client:
            for row in rows:
                free = row.claimed_until is None or utc(row.claimed_until) <= now
                if row.release_id in blocked or utc(row.next_attempt_at) > now or not free:
                    blocked.add(row.release_id)
                    continue
                ok = self._deliver_one(client, sub, row, report)
                if ok is False:
                    return        # the receiver failed: its other rows wait for the next round
                if ok is None:    # claimed by another deliverer just now
                    blocked.add(row.release_id)

    def _deliver_one(self, client: httpx.Client, sub: Subscriber, row: OutboxRow,
                     report: RoundReport) -> bool | None:
        if not self._claim(row.id):
            return None
        body = row.body.encode()
        try:
            headers = signed_headers(sub.secret(), row.delivery_id, int(time.time()), body, row.event_kind)
            resp = client.post(sub.target(), content=body, headers=headers)
            if resp.status_code >= 300:
                raise httpx.HTTPStatusError(f"HTTP {resp.status_code}", request=resp.request, response=resp)
        except Exception as exc:  # noqa: BLE001 — any failure is a retry, never a crash of the job
            self._retry(row, f"{type(exc).__name__}: {exc}"[:500], report)
            return False
        self._mark(row, DELIVERED, report.delivered, delivered_at=self._clock())
        return True

    def _claim(self, row_id: int) -> bool:
        now = self._clock()
        lease = now + timedelta(seconds=2 * self._settings.timeout_seconds + 30)
        with self._sessions.begin() as s:
            done = s.execute(update(OutboxRow).where(
                OutboxRow.id == row_id, OutboxRow.state == PENDING,
                or_(OutboxRow.claimed_until.is_(None), OutboxRow.claimed_until <= now))
                .values(claimed_by=self.owner, claimed_until=lease))
            return done.rowcount == 1

    def _mark(self, row: OutboxRow, state: str, into: list[str], **extra) -> None:
        with self._sessions.begin() as s:
            done = s.execute(update(OutboxRow).where(OutboxRow.id == row.id, OutboxRow.claimed_by == self.owner)
                             .values(state=state, claimed_by=None, claimed_until=None, **extra))
        if done.rowcount == 1:
            into.append(row.delivery_id)
            SENDS.labels(row.subscriber, {DELIVERED: "delivered", FAILED: "failed"}.get(state, "retry")).inc()
        else:
            log.warning("notify.claim_lost", extra={"delivery_id": row.delivery_id})

    def _retry(self, row: OutboxRow, error: str, report: RoundReport) -> None:
        attempts = row.attempts + 1
        s = self._settings
        if attempts >= s.max_attempts:
            log.error("notify.gave_up", extra={"delivery_id": row.delivery_id, "subscriber": row.subscriber,
                                               "attempts": attempts, "error": error})
            self._mark(row, FAILED, report.failed, attempts=attempts, last_error=error)
            return
        delay = backoff_seconds(attempts, s.backoff_seconds, s.backoff_max_seconds)
        log.info("notify.retry", extra={"delivery_id": row.delivery_id, "subscriber": row.subscriber,
                                        "attempts": attempts, "delay_s": delay, "error": error})
        self._mark(row, PENDING, report.retried, attempts=attempts, last_error=error,
                   next_attempt_at=self._clock() + timedelta(seconds=delay))
