"""Gateway input handling: hostile bodies get OpenAI-format 400s, errors passed through keep
their end-to-end headers (Retry-After), malformed HTTP is one log line, not a traceback."""
from __future__ import annotations

import logging
import socket

import httpx
import pytest
from aiohttp import web
from multidict import CIMultiDict

from controller.gateway import GatewayConfig, GatewayServer, GatewayState
from controller.gateway.passthrough import end_to_end_headers
from tests.support.fake_openai import FakeOpenAI, route_doc

TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NESTED = b'{"model": "tiny", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


class Overloaded(FakeOpenAI):
    """An upstream that sheds load: 429 with Retry-After and some hop-by-hop headers."""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.bodies.append(await request.json())
        return web.json_response({"error": {"message": "slow down"}}, status=429, headers={
            "Retry-After": "7", "X-Request-Id": "up-1", "Connection": "keep-alive, X-Private",
            "X-Private": "hop", "Keep-Alive": "timeout=5"})


@pytest.fixture
def gw():
    upstream = Overloaded().start()
    server = GatewayServer(GatewayState(GatewayConfig(admin_token=TOKEN))).start()
    r = httpx.put(f"{server.url}/admin/routes/tiny", json=route_doc("tiny", upstream.url, upstream.url), headers=AUTH)
    assert r.status_code == 200, r.text
    yield server
    server.stop()
    upstream.stop()


def test_deeply_nested_body_is_an_openai_400(gw):
    r = httpx.post(f"{gw.url}/v1/chat/completions", content=NESTED, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"] == {"message": "request body is nested too deeply", "type": "invalid_request_error",
                                 "code": 400}
    r = httpx.put(f"{gw.url}/admin/routes/tiny", content=NESTED, headers=AUTH)
    assert r.status_code == 400 and "not JSON" in r.json()["error"]["message"]


def test_error_passed_through_keeps_retry_after_and_drops_hop_by_hop(gw):
    chat = {"model": "tiny", "messages": [{"role": "user", "content": "x"}]}
    r = httpx.post(f"{gw.url}/v1/chat/completions", json=chat)
    assert r.status_code == 429 and r.json()["error"]["message"] == "slow down"
    assert r.headers["retry-after"] == "7" and r.headers["x-request-id"] == "up-1"
    assert "x-private" not in r.headers and "keep-alive" not in r.headers
    assert r.headers["x-relctl-track"] == "stable"


def test_end_to_end_headers():
    up = CIMultiDict([("Retry-After", "3"), ("Transfer-Encoding", "chunked"), ("Connection", "close, X-A"),
                      ("X-A", "1"), ("Content-Length", "10"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"),
                      ("Content-Type", "application/json; charset=utf-8"), ("Upgrade", "h2c")])
    out = end_to_end_headers(up)
    assert sorted(out.items()) == [("Content-Type", "application/json; charset=utf-8"), ("Retry-After", "3"),
                                   ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]
    assert end_to_end_headers(CIMultiDict())["Content-Type"] == "application/json"


@pytest.mark.parametrize("raw", [b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
                                 b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: \x00\x01\r\n\r\n"])
def test_malformed_request_is_refused_with_one_log_line(gw, caplog, raw):
    caplog.set_level(logging.DEBUG, logger="aiohttp.server")
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(raw)
        assert b" 400 Bad Request" in s.recv(64)
    records = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert [r.levelname for r in records] == ["WARNING"]
    assert records[0].exc_info is None
    assert "malformed HTTP request from 127.0.0.1 refused (400)" in records[0].getMessage()
    assert "\x00" not in records[0].getMessage() and "Bad Header" not in records[0].getMessage()
