"""EmbeddedGatewayRouter (the TrafficRouter backend) against a running gateway."""
from __future__ import annotations

import httpx
import pytest

from controller.gateway import GatewayConfig, GatewayServer, GatewayState
from controller.traffic.base import Backend, Fault, RouteSpec, TrafficRouter
from controller.traffic.embedded import EmbeddedGatewayRouter, GatewayAdminError
from tests.support.fake_openai import FakeOpenAI

TOKEN = "router-token"


@pytest.fixture
def gw():
    with GatewayServer(GatewayState(GatewayConfig(admin_token=TOKEN))) as server:
        yield server


def spec(url: str, candidate: float, model: str = "org/tiny") -> RouteSpec:
    return RouteSpec(model=model, release_id="r9",
                     backends=(Backend("stable", url, "1"), Backend("candidate", url, "2")),
                     weights={"stable": 100 - candidate, "candidate": candidate})


def test_router_apply_current_remove_and_fault(gw):
    fake = FakeOpenAI("ok").start()
    try:
        router: TrafficRouter = EmbeddedGatewayRouter(gw.url, TOKEN)
        assert router.current("org/tiny") is None
        router.apply(spec(fake.url, 25))
        router.apply(spec(fake.url, 25))               # idempotent
        assert router.current("org/tiny") == spec(fake.url, 25)
        router.set_fault("org/tiny", "candidate", Fault(error_rate=1.0))
        router.apply(spec(fake.url, 100))
        r = httpx.post(f"{gw.url}/v1/chat/completions",
                       json={"model": "org/tiny", "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 503 and fake.calls == 0
        router.remove("org/tiny")
        router.remove("org/tiny")                      # removing twice is fine
        assert router.current("org/tiny") is None
    finally:
        fake.stop()


def test_router_reports_wrong_token_and_bad_routes(gw):
    with pytest.raises(GatewayAdminError) as err:
        EmbeddedGatewayRouter(gw.url, "wrong").apply(spec("http://127.0.0.1:9", 0))
    assert err.value.status == 401
    bad = RouteSpec(model="m", backends=(Backend("stable", "http://127.0.0.1:9", "1"),), weights={"stable": 50})
    with pytest.raises(GatewayAdminError, match="sum to 100") as err:
        EmbeddedGatewayRouter(gw.url, TOKEN).apply(bad)
    assert err.value.status == 400
    with pytest.raises(GatewayAdminError, match="track must be one of"):
        EmbeddedGatewayRouter(gw.url, TOKEN).set_fault("m", "blue", Fault())


def test_router_reports_unreachable_gateway():
    with pytest.raises(GatewayAdminError, match="unreachable"):
        EmbeddedGatewayRouter("http://127.0.0.1:9", TOKEN, timeout=1).current("m")
    with pytest.raises(ValueError):
        EmbeddedGatewayRouter("127.0.0.1:9", TOKEN)
