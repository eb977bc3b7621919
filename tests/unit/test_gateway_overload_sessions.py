"""Through the real gateway: overload answers are their own class; sessions are counted per track."""
from __future__ import annotations

import httpx
import pytest
from aiohttp import web

from controller.gateway import GatewayConfig, GatewayServer, GatewayState
from tests.support.fake_openai import FakeOpenAI, route_doc

TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}


class Overloaded(FakeOpenAI):
    """Sheds every request the way llm-d's router does: 429 with its drop-reason header."""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        return web.json_response({"error": {"message": "queue full"}}, status=429,
                                 headers={"x-llm-d-request-dropped-reason": "queue-full"})


@pytest.fixture
def gw():
    stable, candidate = Overloaded().start(), FakeOpenAI("candidate says hi").start()
    server = GatewayServer(GatewayState(GatewayConfig(admin_token=TOKEN))).start()
    r = httpx.put(f"{server.url}/admin/routes/tiny", json=route_doc("tiny", stable.url, candidate.url), headers=AUTH)
    assert r.status_code == 200, r.text
    yield server
    server.stop()
    stable.stop()
    candidate.stop()


def sample(gw, name, **extra):
    labels = dict(model="tiny", version="1", track="stable", release="rel-1", mode="live", **extra)
    return gw.state.metrics.registry.get_sample_value(name, labels) or 0.0


def test_overload_answers_are_their_own_class_and_sessions_count_once(gw):
    for session in ("alice", "alice", "alice", "bob", "bob"):
        r = httpx.post(f"{gw.url}/v1/chat/completions", json=CHAT, headers={"X-Relctl-Session": session})
        assert r.status_code == 429
    assert sample(gw, "relctl_errors_total", error_class="overload") == 5
    assert sample(gw, "relctl_errors_total", error_class="http_5xx") == 0
    assert sample(gw, "relctl_sessions_total") == 2
    assert sample(gw, "relctl_sessions_failed_total") == 0          # overload is not the version failing
