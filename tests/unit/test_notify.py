"""Notifications: payloads, signatures, backoff, the outbox listener and the deliverer's
bookkeeping on a real SQLite store (sends go to an httpx MockTransport; the real receiver
is in tests/integration/test_notify_delivery.py)."""
import json
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from controller.domain.phases import Phase
from controller.notify import outbox
from controller.notify.deliver import Deliverer, backoff_seconds
from controller.notify.outbox import OutboxRow
from controller.notify.payloads import links, slack_body, verdict_line, webhook_body
from controller.notify.settings import MissingSecret, NotificationSettings, Subscriber
from controller.notify.signing import DeliveryVerifier, SignatureError, signed_headers
from controller.registry.signature import sign
from controller.store.db import make_engine, migrate
from controller.store.releases import ReleaseStore

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
RELEASE = {"id": "rel-1", "model": "m", "candidate_version": "2", "stable_version": "1"}
VERDICT = {"decision": "rollback", "evidence": {"metrics": {
    "errors": {"e_value": 250.0, "threshold": 20.0}, "e2e_p99": {"e_value": 1.5, "threshold": 20.0}}}}
ROLLBACK = {"id": 7, "seq": 3, "at": NOW.isoformat(), "kind": "transition", "from_phase": "canary",
            "to_phase": "rolling_back", "reason": "errors: candidate worse", "data": {"step": 1, "verdict": VERDICT}}


def test_webhook_body_carries_event_verdict_and_links():
    body = webhook_body(ROLLBACK, RELEASE, "http://ctl:8000/")
    assert body["event"]["to_phase"] == "rolling_back" and body["event"]["id"] == 7
    assert body["verdict"] == VERDICT and body["step"] == 1
    assert body["links"]["page"] == "http://ctl:8000/releases/rel-1/page"
    assert body["links"]["abort"] == "http://ctl:8000/api/v1/releases/rel-1/abort"


def test_slack_body_names_the_change_the_evidence_and_the_actions():
    body = slack_body(ROLLBACK, RELEASE, "http://ctl:8000")
    assert body["text"] == "m v2 (rel-1): canary → rolling_back"
    section = body["blocks"][0]["text"]["text"]
    assert ":red_circle:" in section and "errors e-value 250 vs threshold 20" in section
    actions = body["blocks"][1]["elements"][0]["text"]
    assert "<http://ctl:8000/releases/rel-1/page|Release page>" in actions
    assert "POST http://ctl:8000/api/v1/releases/rel-1/promote" in actions


def test_verdict_line_without_evidence():
    assert verdict_line(None) == ""
    assert verdict_line({"decision": "continue", "evidence": {}}) == "verdict continue"


def test_links_strip_a_trailing_slash():
    assert links("http://a/", "r")["release"] == "http://a/api/v1/releases/r"


def test_signed_headers_follow_mlflows_scheme_and_verify():
    body = b'{"a":1}'
    headers = signed_headers("s3cret", "d-1", 1_700_000_000, body, "transition")
    assert headers["X-Relctl-Signature"] == sign("s3cret", "d-1", "1700000000", body)
    verifier = DeliveryVerifier("s3cret", clock=lambda: 1_700_000_010)
    assert verifier.verify(headers, body) == "d-1"
    with pytest.raises(SignatureError, match="already received"):
        verifier.verify(headers, body)                     # same delivery id: a receiver drops it
    with pytest.raises(SignatureError, match="does not match"):
        DeliveryVerifier("other", clock=lambda: 1_700_000_010).verify(headers, body)
    with pytest.raises(SignatureError, match="X-Relctl-Signature"):
        verifier.verify({k: v for k, v in headers.items() if k != "X-Relctl-Signature"}, body)


@pytest.mark.parametrize("attempts,expected", [(1, 2.0), (2, 4.0), (3, 8.0), (10, 60.0), (50, 60.0)])
def test_backoff_doubles_up_to_the_cap(attempts, expected):
    assert backoff_seconds(attempts, 2.0, 60.0) == expected


def test_settings_name_the_bad_field(monkeypatch):
    with pytest.raises(ValidationError, match="exactly one of url, url_env"):
        Subscriber(name="x", format="slack")
    with pytest.raises(ValidationError, match="needs secret_env"):
        Subscriber(name="x", url="http://a")
    with pytest.raises(ValidationError, match="unique"):
        NotificationSettings(subscribers=[Subscriber(name="s", format="slack", url="http://a")] * 2)
    settings = NotificationSettings(subscribers=[Subscriber(name="hook", url="http://a", secret_env="HOOK_KEY")])
    monkeypatch.delenv("HOOK_KEY", raising=False)
    with pytest.raises(MissingSecret, match="hook.secret_env names HOOK_KEY"):
        settings.check_environment()
    monkeypatch.setenv("HOOK_KEY", "k")
    settings.check_environment()


class Clock:
    def __init__(self):
        self.now = NOW

    def __call__(self):
        return self.now


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("HOOK_KEY", "k3y")
    engine = make_engine(f"sqlite:///{tmp_path / 'n.db'}")
    migrate(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    settings = NotificationSettings(
        subscribers=[Subscriber(name="hook", url="http://hook.test/in", secret_env="HOOK_KEY"),
                     Subscriber(name="chat", format="slack", url="http://chat.test/in", events=["transition"])],
        backoff_seconds=10, backoff_max_seconds=100, max_attempts=3)
    outbox.install(sessions, settings, "http://ctl:8000")
    return ReleaseStore(sessions), sessions, settings


def _rows(sessions):
    with sessions() as s:
        return s.scalars(select(OutboxRow).order_by(OutboxRow.id)).all()


def test_events_fill_the_outbox_in_their_transaction(env):
    store, sessions, _ = env
    r = store.create("m", "2", "1", {}, NOW)
    store.save(r, r.evolve(phase=Phase.QUANTIZING), [dict(kind="transition", from_phase="pending",
                                                          to_phase="quantizing", reason="go")], NOW)
    assert not store.append_event(r.id, "created", "again", {}, NOW, dedup_key="created")  # rolled back
    rows = _rows(sessions)
    assert [(x.subscriber, x.event_kind) for x in rows] == [("hook", "created"), ("hook", "transition"),
                                                            ("chat", "transition")]
    body = json.loads(rows[1].body)
    assert body["event"]["seq"] == 2 and body["release"]["model"] == "m"
    assert len({x.delivery_id for x in rows}) == 3


def test_deliverer_signs_retries_with_backoff_and_gives_up(env):
    store, sessions, settings = env
    seen, clock, answers = [], Clock(), iter([500, 200, 500, 500, 500])

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200 if request.url.host == "chat.test" else next(answers))

    store.create("m", "2", "1", {}, NOW)
    d = Deliverer(sessions, settings, clock=clock, transport=httpx.MockTransport(handler))
    first = d.deliver_due()
    assert first.retried and not first.delivered                   # the hook answered 500
    assert _rows(sessions)[0].next_attempt_at.replace(tzinfo=timezone.utc) == NOW + timedelta(seconds=10)
    assert d.deliver_due().retried == [] and len(seen) == 1         # not due yet: nothing sent
    clock.now += timedelta(seconds=10)
    assert d.deliver_due().delivered == [_rows(sessions)[0].delivery_id]
    req = seen[-1]
    DeliveryVerifier("k3y", clock=lambda: int(req.headers["X-Relctl-Timestamp"])).verify(req.headers, req.content)
    assert d.deliver_due().delivered == []                          # delivered once, never again
    r2 = store.list()[0]
    store.save(r2, r2.evolve(phase=Phase.FAILED), [dict(kind="transition", to_phase="failed", reason="x")], NOW)
    for _ in range(3):
        clock.now += timedelta(seconds=100)
        report = d.deliver_due()
    assert report.failed and _rows(sessions)[1].state == "failed" and _rows(sessions)[1].attempts == 3


def test_a_blocked_release_holds_back_only_its_own_later_events(env):
    store, sessions, settings = env
    sent = []
    a = store.create("a", "2", "1", {}, NOW)
    store.create("b", "2", "1", {}, NOW)
    store.save(a, a.evolve(phase=Phase.FAILED), [dict(kind="transition", to_phase="failed", reason="x")], NOW)
    with sessions.begin() as s:            # another deliverer holds a's first row
        s.get(OutboxRow, 1).claimed_until = NOW + timedelta(minutes=1)
    d = Deliverer(sessions, settings, clock=Clock(),
                  transport=httpx.MockTransport(lambda r: sent.append(json.loads(r.content)) or httpx.Response(204)))
    d.deliver_due()
    assert [(b["release"]["model"], b["event"]["kind"]) for b in sent if "event" in b] == [("b", "created")]
