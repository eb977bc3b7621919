"""API input handling: policies are names or mappings (never server paths), versions are
canonical, a gateway outage is a 503, and OpenAPI declares auth and every error."""
import socket

import pytest
from fastapi.testclient import TestClient

from controller.api.app import create_app
from controller.traffic.embedded import EmbeddedGatewayRouter
from tests.unit.test_api import TOKENS, auth, client  # noqa: F401  (fixture)


@pytest.mark.parametrize("policy", ["/etc/hostname", "../../etc/passwd", "policies/default.yaml", "x.yml"])
def test_policy_is_never_read_as_a_server_path(client, tmp_path, policy):  # noqa: F811
    r = client.post("/api/v1/releases", json={"model": "chat", "version": "2", "policy": policy},
                    headers=auth("o-tok"))
    assert r.status_code == 422 and "file paths are not accepted" in str(r.json()["detail"])
    assert client.ctx.store.list() == []


def test_existing_yaml_file_is_not_quoted_back(client, tmp_path):  # noqa: F811
    secret = tmp_path / "secret.yaml"
    secret.write_text("password: hunter2\n")
    r = client.post("/api/v1/releases", json={"model": "chat", "version": "2", "policy": str(secret)},
                    headers=auth("o-tok"))
    assert r.status_code == 422 and "hunter2" not in r.text
    assert str(tmp_path) not in r.json()["detail"][0]["msg"]


def test_policy_by_name(client):  # noqa: F811
    r = client.post("/api/v1/releases", json={"model": "chat", "version": "2", "policy": "demo"}, headers=auth("o-tok"))
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("version", ["01", "002", "\u0662", "\uff12", "2 ", "+2", "2.0", "1" * 5000, 2])
def test_non_canonical_versions_are_422_naming_the_field(client, version):  # noqa: F811
    r = client.post("/api/v1/releases", json={"model": "chat", "version": version}, headers=auth("o-tok"))
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "version"]
    assert client.ctx.store.list() == []


def test_champion_spelled_differently_is_not_a_new_release(client):  # noqa: F811
    r = client.post("/api/v1/releases", json={"model": "chat", "version": "01"}, headers=auth("o-tok"))
    assert r.status_code == 422
    r = client.post("/api/v1/releases", json={"model": "chat", "version": "1"}, headers=auth("o-tok"))
    assert r.status_code == 422 and "already the champion" in r.json()["detail"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_faults_with_the_gateway_unreachable_is_503_with_the_reason(client):  # noqa: F811
    client.ctx.router = EmbeddedGatewayRouter(f"http://127.0.0.1:{_closed_port()}", "tok", timeout=2)
    app = create_app(client.ctx, TOKENS)
    r = TestClient(app).put("/api/v1/faults/chat/candidate", json={"error_rate": 0.5}, headers=auth("a-tok"))
    assert r.status_code == 503 and "gateway unreachable" in r.json()["detail"]


def test_faults_refused_by_the_gateway_is_502(client):  # noqa: F811
    from controller.traffic.embedded import GatewayAdminError

    class Refusing:
        def set_fault(self, *a):
            raise GatewayAdminError("PUT /admin/faults/chat/candidate -> HTTP 401: wrong token", 401)
    client.ctx.router = Refusing()
    r = TestClient(create_app(client.ctx, TOKENS)).put("/api/v1/faults/chat/candidate", json={},
                                                       headers=auth("a-tok"))
    assert r.status_code == 502 and "HTTP 401" in r.json()["detail"]


def test_openapi_declares_bearer_auth_and_the_errors(client):  # noqa: F811
    doc = client.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["bearer"]["description"]}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if path == "/healthz":
                assert "security" not in op
                continue
            if path.startswith("/api/"):      # (the report's browser page also takes Basic auth)
                assert op["security"] == [{"bearer": []}], (method, path)
            assert {"401", "403", "422"} <= set(op["responses"]), (method, path)
    releases = doc["paths"]["/api/v1/releases/{release_id}"]["get"]["responses"]
    assert "404" in releases
    assert "409" in doc["paths"]["/api/v1/releases"]["post"]["responses"]
    assert {"502", "503"} <= set(doc["paths"]["/api/v1/faults/{model}/{track}"]["put"]["responses"])


def test_every_error_body_matches_the_declared_schema(client):  # noqa: F811
    # a semantic 422 (string) and a field 422 (list) are both InvalidInput
    from controller.api.errors import ErrorMessage, InvalidInput
    r1 = client.post("/api/v1/releases", json={"model": "nope", "version": "1"}, headers=auth("o-tok"))
    r2 = client.post("/api/v1/releases", json={"model": "chat", "version": "01"}, headers=auth("o-tok"))
    for r in (r1, r2):
        assert r.status_code == 422
        InvalidInput.model_validate(r.json())
    for r in (client.get("/api/v1/releases"), client.get("/api/v1/releases/x", headers=auth("v-tok"))):
        ErrorMessage.model_validate(r.json())


@pytest.mark.parametrize("body", [
    b'{"model": "chat", "version": "2", "policy": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_000 + b"}",
    b'{"model": "chat", "version": "2", "policy": {"name": ' + b"[" * 900 + b"]" * 900 + b"}}",
])
def test_deeply_nested_bodies_are_4xx(client, body):  # noqa: F811
    safe = TestClient(client.app, raise_server_exceptions=False)
    r = safe.post("/api/v1/releases", content=body, headers={**auth("o-tok"), "Content-Type": "application/json"})
    assert r.status_code in (400, 422), r.text[:300]
    assert client.ctx.store.list() == []
