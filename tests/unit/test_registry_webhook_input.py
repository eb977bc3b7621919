"""Signed deliveries relctl must not act on are acknowledged as ignored; bodies are capped."""
import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from controller.registry.signature import DELIVERY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from controller.registry.types import EventKind, RegistryError, RegistryEvent
from controller.registry.webhook import WEBHOOK_PATH, webhook_router
from tests.unit.test_api import client  # noqa: F401  (fixture: controller with a fake registry)

SECRET = "hook-secret"
NOW = 1_800_000_000


class Handler:
    """Stands in for service.handle_registry_event: the registry knows model 'm' versions 1-3."""

    def __init__(self):
        self.events = []

    def __call__(self, event):
        if event.name != "m" or event.version not in {"1", "2", "3"}:
            raise RegistryError(f"model {event.name!r} has no version {event.version}")
        self.events.append(event)


@pytest.fixture
def hook():
    handler = Handler()
    app = FastAPI()
    app.include_router(webhook_router(SECRET, handler, watched={"m", "other"}, max_body_bytes=4096,
                                      clock=lambda: NOW))
    return TestClient(app), handler


def created(name="m", version="2"):
    return {"entity": "model_version", "action": "created", "timestamp": "t",
            "data": {"name": name, "version": version}}


def signed(raw, delivery):
    return {DELIVERY_ID_HEADER: delivery, TIMESTAMP_HEADER: str(NOW),
            SIGNATURE_HEADER: sign(SECRET, delivery, str(NOW), raw), "Content-Type": "application/json"}


def post(http, body, delivery="d-1"):
    raw = json.dumps(body).encode()
    return http.post(WEBHOOK_PATH, content=raw, headers=signed(raw, delivery))


def ignored_count() -> float:
    return REGISTRY.get_sample_value("relctl_webhook_deliveries_total", {"outcome": "ignored"}) or 0.0


def test_watched_model_is_accepted(hook):
    http, handler = hook
    r = post(http, created())
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    assert handler.events == [RegistryEvent(EventKind.VERSION_CREATED, "m", "2")]


@pytest.mark.parametrize("body, reason", [
    (created(name="not-watched"), "is not watched"),
    (created(version="01"), "without leading zeros"),
    (created(version="\u0662"), "ASCII digits"),
    (created(version="1" * 3000), "3000 digits"),
    (created(version="9"), "has no version 9"),                  # unknown version
    (created(name="other", version="1"), "model 'other' has no version 1"),   # watched, not in MLflow
])
def test_signed_deliveries_not_acted_on_are_acknowledged_as_ignored(hook, body, reason, caplog):
    http, handler = hook
    before = ignored_count()
    r = post(http, body)
    assert r.status_code == 200, r.text
    assert ignored_count() == before + 1
    assert r.json()["status"] == "ignored" and reason in r.json()["reason"]
    assert handler.events == []
    assert any(rec.getMessage() == "webhook ignored" for rec in caplog.records)
    assert post(http, body).status_code == 401          # acknowledged once: a resend is a replay


def test_body_over_the_cap_is_413_before_it_is_read(hook):
    http, handler = hook
    raw = b'{"pad": "' + b"x" * 10_000 + b'"}'
    assert http.post(WEBHOOK_PATH, content=raw, headers=signed(raw, "d-big")).status_code == 413

    def chunks():                      # no Content-Length: counted while it streams
        for _ in range(100):
            yield b"x" * 1000
    r = http.post(WEBHOOK_PATH, content=chunks(), headers=signed(b"", "d-stream"))
    assert r.status_code == 413 and "over the limit of 4096 bytes" in r.json()["detail"]
    assert handler.events == []


def test_deeply_nested_payload_is_400(hook):
    http, _ = hook
    raw = b"[" * 2000 + b"]" * 2000       # past json's recursion limit, under the cap
    r = http.post(WEBHOOK_PATH, content=raw, headers=signed(raw, "d-deep"))
    assert r.status_code == 400


def test_through_the_service_only_a_known_version_of_a_watched_model_starts_a_release(client):  # noqa: F811
    from controller import service
    app = FastAPI()
    app.include_router(webhook_router(SECRET, lambda ev: service.handle_registry_event(client.ctx, ev, "default"),
                                      watched={"chat"}, clock=lambda: NOW))
    hook = TestClient(app)
    for i, (body, status) in enumerate([(created("nope", "2"), "ignored"), (created("chat", "9"), "ignored"),
                                        (created("chat", "02"), "ignored"), (created("chat", "2"), "accepted")]):
        r = post(hook, body, delivery=f"d-{i}")
        assert (r.status_code, r.json()["status"]) == (200, status), r.text
    assert [(r.model, r.candidate_version) for r in client.ctx.store.list()] == [("chat", "2")]
