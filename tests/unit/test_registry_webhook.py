import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from controller.registry.signature import (
    DELIVERY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign)
from controller.registry.types import EventKind, RegistryEvent
from controller.registry.webhook import WEBHOOK_PATH, webhook_router

SECRET = "hook-secret"
NOW = 1_800_000_000


class Recorder:
    def __init__(self, fail_times=0):
        self.events, self.fail_times = [], fail_times

    def __call__(self, event):
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError("store down")
        self.events.append(event)


@pytest.fixture
def setup():
    recorder = Recorder()
    app = FastAPI()
    app.include_router(webhook_router(SECRET, recorder, clock=lambda: NOW))
    return TestClient(app), recorder


def post(client, body, *, secret=SECRET, delivery="d-1", ts=NOW):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    hdrs = {DELIVERY_ID_HEADER: delivery, TIMESTAMP_HEADER: str(ts),
            SIGNATURE_HEADER: sign(secret, delivery, str(ts), raw),
            "Content-Type": "application/json"}
    return client.post(WEBHOOK_PATH, content=raw, headers=hdrs)


ALIAS = {"entity": "model_version_alias", "action": "created", "timestamp": "t",
         "data": {"name": "m", "alias": "candidate", "version": "2"}}


def test_valid_delivery_calls_on_event(setup):
    client, recorder = setup
    resp = post(client, ALIAS)
    assert resp.status_code == 200 and resp.json()["status"] == "accepted"
    assert recorder.events == [RegistryEvent(EventKind.ALIAS_SET, "m", "2", alias="candidate")]


@pytest.mark.parametrize("kwargs, message", [
    ({"secret": "wrong"}, "does not match"),
    ({"ts": NOW - 3600}, "stale"),
])
def test_bad_signature_is_401_and_changes_nothing(setup, kwargs, message):
    client, recorder = setup
    resp = post(client, ALIAS, **kwargs)
    assert resp.status_code == 401 and message in resp.json()["detail"]
    assert recorder.events == []


def test_missing_signature_is_401(setup):
    client, recorder = setup
    resp = client.post(WEBHOOK_PATH, json=ALIAS)
    assert resp.status_code == 401
    assert "missing header X-MLflow-" in resp.json()["detail"]


def test_replay_is_401(setup):
    client, recorder = setup
    assert post(client, ALIAS).status_code == 200
    resp = post(client, ALIAS)
    assert resp.status_code == 401 and "replay" in resp.json()["detail"]
    assert len(recorder.events) == 1


@pytest.mark.parametrize("body, message", [
    (b"{not json", "malformed"),
    ({"entity": "model_version", "action": "created", "data": {"name": "m"}}, "lacks version"),
])
def test_malformed_payload_is_400(setup, body, message):
    client, recorder = setup
    resp = post(client, body)
    assert resp.status_code == 400 and message in resp.json()["detail"]
    assert recorder.events == []


def test_unrelated_event_is_acknowledged_and_ignored(setup):
    client, recorder = setup
    resp = post(client, {"entity": "registered_model", "action": "created",
                         "data": {"name": "m", "tags": {}}})
    assert resp.status_code == 200 and resp.json()["status"] == "ignored"
    assert recorder.events == []


def test_handler_failure_is_500_and_retry_with_same_delivery_succeeds():
    recorder = Recorder(fail_times=1)
    app = FastAPI()
    app.include_router(webhook_router(SECRET, recorder, clock=lambda: NOW))
    client = TestClient(app)
    assert post(client, ALIAS).status_code == 500
    assert post(client, ALIAS).status_code == 200
    assert len(recorder.events) == 1


def test_router_refuses_empty_secret():
    with pytest.raises(ValueError, match="secret"):
        webhook_router("", lambda e: None)
