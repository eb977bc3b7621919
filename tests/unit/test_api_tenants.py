"""Tenant-scoped tokens through the real API: a tenant's token sees and acts on its models only.

Another tenant's release or model answers exactly as an unknown one (404, same words), so a
token cannot probe which names exist; a token without a tenant sees everything.
"""
import base64
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from controller.api.app import create_app
from controller.api.auth import parse_tokens
from controller.config import SettingsError, load_settings
from controller.registry.types import RegistryError, VersionInfo
from controller.store.models import AuditRow, utcnow
from controller.tenants import TenantSettings
from tests.conftest import make_controller

TENANTS = {"bank-a": TenantSettings(models=["bank-chat"]), "clinic": TenantSettings(models=["clinic-chat"])}
TOKENS = parse_tokens("admin:root, viewer@bank-a:bank-view, operator@bank-a:bank-op, admin@bank-a:bank-admin, "
                      "operator@clinic:clinic-op")


class Registry:
    def get_version(self, name, version):
        if name not in ("bank-chat", "clinic-chat", "untenanted"):
            raise RegistryError(f"unknown model {name!r}")
        return VersionInfo(name, version, "models:/x")

    def get_alias(self, name, alias):
        return "1"


class Router:
    def __init__(self):
        self.faults = []

    def set_fault(self, model, track, fault):
        self.faults.append((model, track))


@pytest.fixture
def api(tmp_path):
    ctx = make_controller(Path(tmp_path), registry=Registry(), router=Router())
    c = TestClient(create_app(ctx, TOKENS, tenants=TENANTS))
    c.ctx = ctx
    c.bank = c.post("/api/v1/releases", json={"model": "bank-chat", "version": "2"}, headers=auth("root")).json()
    c.clinic = c.post("/api/v1/releases", json={"model": "clinic-chat", "version": "2"}, headers=auth("root")).json()
    return c


def auth(token):
    return {"Authorization": f"Bearer {token}"}


def test_a_tenant_lists_only_its_releases_and_an_untenanted_admin_sees_all(api):
    ids = {r["model"]: r["id"] for r in api.get("/api/v1/releases", headers=auth("root")).json()}
    assert set(ids) == {"bank-chat", "clinic-chat"}
    assert [r["id"] for r in api.get("/api/v1/releases", headers=auth("bank-view")).json()] == [api.bank["id"]]
    assert api.get("/api/v1/releases?model=clinic-chat", headers=auth("bank-view")).json() == []
    assert [r["id"] for r in api.get("/api/v1/releases", headers=auth("clinic-op")).json()] == [api.clinic["id"]]


@pytest.mark.parametrize("path", ["/api/v1/releases/{id}", "/api/v1/releases/{id}/events",
                                  "/api/v1/releases/{id}/report"])
def test_another_tenants_release_reads_as_unknown(api, path):
    own = api.get(path.format(id=api.bank["id"]), headers=auth("bank-view"))
    assert own.status_code == 200
    other = api.get(path.format(id=api.clinic["id"]), headers=auth("bank-view"))
    unknown = api.get(path.format(id="rel-nope"), headers=auth("bank-view"))
    assert other.status_code == unknown.status_code == 404
    assert other.json()["detail"] == f"no release {api.clinic['id']!r}"     # the same words as an unknown id
    assert api.get(path.format(id=api.clinic["id"]), headers=auth("root")).status_code == 200


def test_the_report_page_with_basic_auth_is_scoped_too(api):
    basic = {"Authorization": "Basic " + base64.b64encode(b"me:bank-view").decode()}
    assert api.get(f"/releases/{api.bank['id']}/page", headers=basic).status_code == 200
    assert api.get(f"/releases/{api.clinic['id']}/page", headers=basic).status_code == 404


def test_a_tenant_cannot_act_on_another_tenants_release(api):
    r = api.post(f"/api/v1/releases/{api.clinic['id']}/abort", headers=auth("bank-op"))
    assert r.status_code == 404
    assert api.ctx.store.get(api.clinic["id"]).requested_action is None
    # a viewer of another tenant gets the same 404, not a 403 that would confirm the id
    assert api.post(f"/api/v1/releases/{api.clinic['id']}/pause", headers=auth("bank-view")).status_code == 404
    done = api.post(f"/api/v1/releases/{api.bank['id']}/abort", headers=auth("bank-op"))
    assert done.status_code == 200 and done.json()["requested_action"] == "abort"
    assert api.post(f"/api/v1/releases/{api.bank['id']}/pause", headers=auth("bank-view")).status_code == 403


def test_a_tenant_cannot_release_another_tenants_or_an_untenanted_model(api):
    before = len(api.ctx.store.list())
    for model in ("clinic-chat", "untenanted"):
        r = api.post("/api/v1/releases", json={"model": model, "version": "3"}, headers=auth("bank-op"))
        assert r.status_code == 404 and model in r.json()["detail"]
    assert len(api.ctx.store.list()) == before
    assert api.post("/api/v1/releases", json={"model": "untenanted", "version": "3"},
                    headers=auth("root")).status_code == 201


def test_model_paths_of_another_tenant_are_404(api):
    body = {"error_rate": 0.5}
    assert api.put("/api/v1/faults/clinic-chat/candidate", json=body, headers=auth("bank-admin")).status_code == 404
    assert api.put("/api/v1/faults/bank-chat/candidate", json=body, headers=auth("bank-admin")).status_code == 200
    assert api.ctx.router.faults == [("bank-chat", "candidate")]
    r = api.get("/api/v1/models/clinic-chat/evaluations", headers=auth("bank-view"))
    assert r.status_code == 404 and r.json()["detail"] == "no model 'clinic-chat'"


def test_audit_shows_a_tenant_its_models_records_only(api):
    with api.ctx.audit._sessions.begin() as s:
        for i, (model, rel) in enumerate([("bank-chat", api.bank["id"]), ("clinic-chat", api.clinic["id"])]):
            s.add(AuditRow(at=utcnow(), model=model, release_id=rel, version="2", track="candidate", mode="serve",
                           status=200, request_sha256=f"{i}" * 64, response_sha256="f" * 64, stream=False,
                           seq=i + 1, record_sha256=f"{i}" * 64, dropped=0))
    assert {r["model"] for r in api.get("/api/v1/audit", headers=auth("root")).json()} == {"bank-chat", "clinic-chat"}
    assert [r["model"] for r in api.get("/api/v1/audit", headers=auth("bank-view")).json()] == ["bank-chat"]
    assert api.get("/api/v1/audit?model=clinic-chat", headers=auth("bank-view")).json() == []
    assert api.get(f"/api/v1/audit?release_id={api.clinic['id']}", headers=auth("bank-view")).json() == []


def test_tokens_name_their_tenant_and_an_unconfigured_tenant_is_refused(tmp_path):
    tokens = parse_tokens("operator@bank-a:s3cret")
    assert tokens == {"s3cret": "operator"} and tokens["s3cret"].tenant == "bank-a"
    with pytest.raises(ValueError, match="ROLE@TENANT") as err:
        parse_tokens("operator@:s3cret")
    assert "s3cret" not in str(err.value)
    with pytest.raises(ValueError, match="not configured under `tenants:`: bank-a"):
        create_app(make_controller(Path(tmp_path)), tokens, tenants={})


def test_tenant_settings_are_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("RELCTL_TENANTS", '{"bank-a": {"models": ["m"]}, "clinic": {"models": ["m"]}}')
    with pytest.raises(SettingsError, match="'m' is in tenants 'bank-a' and 'clinic'"):
        load_settings()
    monkeypatch.setenv("RELCTL_TENANTS", '{"Bank_A": {"models": ["m"]}}')
    with pytest.raises(SettingsError, match="tenant name 'Bank_A' must be a DNS label"):
        load_settings()
    monkeypatch.setenv("RELCTL_TENANTS", '{"bank-a": {"models": ["m"], "namespace": "banks"}}')
    assert load_settings().tenants["bank-a"].namespace == "banks"
