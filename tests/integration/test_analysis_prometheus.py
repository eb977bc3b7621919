"""The judge on real metrics: real gateway (fault injection) -> real Prometheus -> Analyzer.

The upstream model server is a minimal stub here (this test is about the metric path and
the judge; real vLLM is the e2e suite's job). Detection times are printed and recorded.
"""
from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timezone

import aiohttp
import pytest
from aiohttp import web

from controller.analysis.analyzer import Analyzer
from controller.analysis.providers.prometheus import PrometheusProvider
from controller.analysis.types import Decision
from controller.ports import free_port
from controller.traffic.base import Backend, Fault, RouteSpec
from controller.traffic.embedded import EmbeddedGatewayRouter
from policies.analysis import AnalysisPolicy
from tests.support.gateway_process import GatewayProcess
from tests.support.prometheus import PrometheusServer

pytestmark = pytest.mark.integration
MODEL = "tiny"
TOKEN = "integration-test-token"
CFG = AnalysisPolicy(settle_seconds=2, min_soak_seconds=5, min_requests=50, latency_min_samples=50,
                     max_inconclusive_seconds=30)


class Upstream:
    """Answers every chat completion at once with a fixed reply, on a background loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = free_port()

    def start(self) -> "Upstream":
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self.loop).result(10)
        return self

    async def _serve(self) -> None:
        async def reply(request: web.Request) -> web.Response:
            await request.read()
            return web.json_response({"id": "x", "object": "chat.completion", "model": MODEL, "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]})
        app = web.Application()
        app.router.add_post("/v1/chat/completions", reply)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class Load:
    """About `rps` chat requests per second through the gateway until stopped."""

    def __init__(self, url: str, rps: float = 100.0) -> None:
        self.url, self.rps = url, rps
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        async with aiohttp.ClientSession() as http:
            while not self.stop_flag.is_set():
                t0 = time.monotonic()
                await asyncio.gather(*(self._one(http, body) for _ in range(10)))
                await asyncio.sleep(max(0.0, 10 / self.rps - (time.monotonic() - t0)))

    async def _one(self, http: aiohttp.ClientSession, body: dict) -> None:
        try:
            async with http.post(f"{self.url}/v1/chat/completions", json=body) as resp:
                await resp.read()
        except aiohttp.ClientError:
            pass

    def __enter__(self) -> "Load":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_flag.set()
        self.thread.join(10)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    prom = PrometheusServer(tmp_path_factory.mktemp("prometheus")).start()
    upstream = Upstream().start()
    gateway = GatewayProcess(tmp_path_factory.mktemp("gateway"), TOKEN, "--log-level", "WARNING").start()
    try:
        prom.add_target(f"127.0.0.1:{gateway.port}", name="gateway")
        yield prom, gateway.url, EmbeddedGatewayRouter(gateway.url, TOKEN), upstream
    finally:
        gateway.stop()
        upstream.stop()
        prom.stop()


def _route(upstream: Upstream, release: str, candidate_pct: float, mirror: bool = False) -> RouteSpec:
    url = f"http://127.0.0.1:{upstream.port}"
    return RouteSpec(model=MODEL, backends=(Backend("stable", url, "1"), Backend("candidate", url, "2")),
                     weights={"stable": 100 - candidate_pct, "candidate": candidate_pct},
                     mirror_to="candidate" if mirror else None, release_id=release)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _judge_until(analyzer: Analyzer, release: str, phase: str, state: dict, stop: set, timeout: float):
    """Tick once a second until a decision in `stop`; returns (verdict, seconds, state)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        verdict, state = analyzer.judge(MODEL, release, phase, _now(), state)
        if verdict.decision in stop:
            return verdict, time.monotonic() - start, state
        time.sleep(1.0)
    return verdict, time.monotonic() - start, state


def _canary(stack, release: str, candidate_error_rate: float, stable_error_rate: float):
    prom, gw_url, router, upstream = stack
    router.apply(_route(upstream, release, 0))
    router.set_fault(MODEL, "stable", Fault(error_rate=stable_error_rate))
    router.set_fault(MODEL, "candidate", Fault(error_rate=candidate_error_rate))
    analyzer = Analyzer(PrometheusProvider(prom.url), CFG)
    with Load(gw_url):
        prom.wait_for(f'sum(relctl_request_duration_seconds_count{{release="{release}",track="stable"}}) > 300')
        state = analyzer.start_window(MODEL, release, 0.0, _now(), {})
        router.apply(_route(upstream, release, 20))
        state = analyzer.start_window(MODEL, release, 0.20, _now(), state)
        return _judge_until(analyzer, release, "canary", state, {Decision.ROLLBACK, Decision.PROMOTE,
                                                                 Decision.PAUSE}, timeout=60)


def test_faulty_candidate_is_rolled_back(stack, record_property):
    verdict, seconds, state = _canary(stack, "rel-bad", candidate_error_rate=0.10, stable_error_rate=0.02)
    print(f"\nrollback after {seconds:.1f} s: {verdict.reason}")
    record_property("detect_seconds", round(seconds, 1))
    assert verdict.decision == Decision.ROLLBACK, verdict
    assert verdict.reason.startswith(("errors regression", "hard guard"))
    counts = verdict.evidence["counts"]["candidate"]
    assert counts["errors_by_class"].get("http_5xx", 0) == counts["errors"] > 0
    assert set(state["thresholds"]) >= {"e2e_p50", "e2e_p99"}, state["threshold_notes"]  # from stable history
    assert seconds < 45


def test_healthy_candidate_is_promoted(stack):
    # Error-free tracks: promotion comes from the tolerance bound (deterministic timing);
    # the SPRT's acceptance boundary is covered by the unit tests.
    verdict, seconds, _ = _canary(stack, "rel-good", candidate_error_rate=0.0, stable_error_rate=0.0)
    print(f"\npromoted after {seconds:.1f} s: {verdict.reason}")
    assert verdict.decision == Decision.PROMOTE, verdict
    assert verdict.evidence["srm"]["mismatch"] is False
    assert abs(verdict.evidence["srm"]["observed_share"] - 0.2) < 0.05


def test_shadow_catches_a_bad_candidate_before_any_user_sees_it(stack, record_property):
    prom, gw_url, router, upstream = stack
    release = "rel-shadow"
    router.apply(_route(upstream, release, 0, mirror=True))
    router.set_fault(MODEL, "stable", Fault(error_rate=0.02))
    router.set_fault(MODEL, "candidate", Fault(error_rate=0.10))
    analyzer = Analyzer(PrometheusProvider(prom.url), CFG)
    with Load(gw_url):
        state = analyzer.start_window(MODEL, release, 0.0, _now(), {})
        verdict, seconds, _ = _judge_until(analyzer, release, "shadow", state, {Decision.ROLLBACK, Decision.PROMOTE},
                                           timeout=45)
    print(f"\nshadow rollback after {seconds:.1f} s: {verdict.reason}")
    record_property("shadow_detect_seconds", round(seconds, 1))
    assert verdict.decision == Decision.ROLLBACK, verdict
    assert verdict.evidence["only_candidate_failed"] > verdict.evidence["only_stable_failed"]


def test_unreachable_prometheus_is_data_not_a_crash():
    provider = PrometheusProvider(f"http://127.0.0.1:{free_port()}", timeout_seconds=1)
    reading = provider.read(MODEL, "rel-x", {})
    assert not reading.ok and "query failed" in reading.error
    assert provider.stable_latency(MODEL, "rel-x", "e2e").error
