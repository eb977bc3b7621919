"""REST API: auth by role, clear 4xx errors, and bad input that changes nothing.

The registry and router are in-memory doubles (this tests the API's logic); the store is
real SQLite. The real MLflow/gateway path is covered by tests/e2e.
"""
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import sessionmaker

from controller.api.app import create_app
from controller.api.auth import parse_tokens
from controller.registry.types import RegistryError, VersionInfo
from controller.store.audit import AuditStore
from controller.store.db import make_engine, migrate
from controller.store.models import AuditRow, utcnow
from controller.store.releases import ReleaseStore
from tests.conftest import make_controller

TOKENS = {"v-tok": "viewer", "o-tok": "operator", "a-tok": "admin"}


class FakeRegistry:
    versions = {"chat": {"1", "2"}}
    aliases = {("chat", "champion"): "1"}

    def get_version(self, name, version):
        if name not in self.versions:
            raise RegistryError(f"unknown model {name!r}")
        if version not in self.versions[name]:
            raise RegistryError(f"model {name!r} has no version {version}")
        return VersionInfo(name, version, "models:/x")

    def get_alias(self, name, alias):
        return self.aliases.get((name, alias))


class FakeRouter:
    def __init__(self):
        self.faults = []

    def set_fault(self, model, track, fault):
        self.faults.append((model, track, fault))


@pytest.fixture
def client(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'api.db'}")
    migrate(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    ctx = make_controller(Path(tmp_path), store=ReleaseStore(sessions), registry=FakeRegistry(),
                          router=FakeRouter(), audit=AuditStore(sessions))
    c = TestClient(create_app(ctx, TOKENS))
    c.ctx = ctx
    return c


def auth(token):
    return {"Authorization": f"Bearer {token}"}


def test_tokens_and_roles(client):
    assert client.get("/api/v1/releases").status_code == 401
    assert client.get("/api/v1/releases", headers=auth("wrong")).status_code == 401
    assert client.get("/api/v1/releases", headers=auth("v-tok")).status_code == 200
    r = client.post("/api/v1/releases", json={"model": "chat", "version": "2"}, headers=auth("v-tok"))
    assert r.status_code == 403 and "needs operator" in r.json()["detail"]
    assert client.ctx.store.list() == []


def test_create_get_events_abort(client):
    r = client.post("/api/v1/releases", json={"model": "chat", "version": "2"}, headers=auth("o-tok"))
    assert r.status_code == 201, r.text
    rel = r.json()
    assert (rel["phase"], rel["stable_version"]) == ("pending", "1")
    assert client.get(f"/api/v1/releases/{rel['id']}", headers=auth("v-tok")).json()["id"] == rel["id"]
    assert client.get(f"/api/v1/releases/{rel['id']}/events", headers=auth("v-tok")).json()[0]["kind"] == "created"
    done = client.post(f"/api/v1/releases/{rel['id']}/abort", headers=auth("o-tok")).json()
    assert done["requested_action"] == "abort"
    again = client.post("/api/v1/releases", json={"model": "chat", "version": "2"}, headers=auth("o-tok"))
    assert again.status_code == 409


@pytest.mark.parametrize("body, status, fragment", [
    ({"model": "nope", "version": "1"}, 422, "unknown model 'nope'"),
    ({"model": "chat", "version": "9"}, 422, "no version 9"),
    ({"model": "chat", "version": "1"}, 422, "already the champion"),
    ({"model": "chat", "version": "2", "policy": {"canary": {"steps": [90, 10]}}}, 422, "canary.steps"),
    ({"model": "chat", "version": "2", "policy": "no-such-policy"}, 422, "unknown policy"),
    ({"model": "chat"}, 422, "version"),
    ({"model": "chat", "version": "2", "colour": "red"}, 422, "colour"),
])
def test_bad_input_changes_nothing(client, body, status, fragment):
    r = client.post("/api/v1/releases", json=body, headers=auth("o-tok"))
    assert r.status_code == status
    assert fragment in str(r.json()["detail"])
    assert client.ctx.store.list() == []


def test_unknown_release_and_action(client):
    assert client.get("/api/v1/releases/rel-x", headers=auth("v-tok")).status_code == 404
    rel = client.post("/api/v1/releases", json={"model": "chat", "version": "2"}, headers=auth("o-tok")).json()
    r = client.post(f"/api/v1/releases/{rel['id']}/explode", headers=auth("o-tok"))
    assert r.status_code == 404          # no such action route


def test_faults_need_admin(client):
    body = {"error_rate": 0.5}
    assert client.put("/api/v1/faults/chat/candidate", json=body, headers=auth("o-tok")).status_code == 403
    assert client.put("/api/v1/faults/chat/candidate", json=body, headers=auth("a-tok")).status_code == 200
    assert client.ctx.router.faults[0][1] == "candidate"
    assert client.put("/api/v1/faults/chat/candidate", json={"error_rate": 3},
                      headers=auth("a-tok")).status_code == 422


def test_token_spec_errors_do_not_echo_secrets():
    assert parse_tokens("admin:s3cret, viewer:v") == {"s3cret": "admin", "v": "viewer"}
    with pytest.raises(ValueError) as err:
        parse_tokens("root:s3cret")
    assert "s3cret" not in str(err.value)


def test_audit_query(client):
    with client.ctx.audit._sessions.begin() as s:
        for i, track in enumerate(("stable", "candidate")):
            s.add(AuditRow(at=utcnow(), model="chat", release_id="rel-1", version=str(i + 1), track=track,
                           mode="live", status=200, request_sha256=f"{i}" * 64, response_sha256="f" * 64))
    assert client.get("/api/v1/audit", headers=auth("wrong")).status_code == 401
    rows = client.get("/api/v1/audit", params={"sha256": "1" * 64}, headers=auth("v-tok")).json()
    assert [r["track"] for r in rows] == ["candidate"]
    assert len(client.get("/api/v1/audit", params={"model": "chat"}, headers=auth("v-tok")).json()) == 2
    assert client.get("/api/v1/audit", params={"limit": 0}, headers=auth("v-tok")).status_code == 422
