"""The gateway restarted under a canary: its routes live only in memory, so the restarted process
serves nothing until the controller's next tick programs the split again from the store; its
counters start from zero, and the judge restarts the window instead of reading a negative count.

Real: the gateway process (SIGKILLed and started again on the same port), the upstream it proxies
to (tests/support/fake_openai.py), Prometheus scraping the gateway, the PrometheusProvider, the
analyzer, the store and the loop. In-memory: the pool (its servers' URLs point at the upstream)
and the registry.
"""
from __future__ import annotations

import threading
import time

import httpx
import pytest

from controller.analysis.providers.prometheus import PrometheusProvider
from controller.domain.phases import Phase
from controller.pools.base import Served
from controller.reconcile.loop import reconcile
from controller.traffic.embedded import EmbeddedGatewayRouter
from tests.conftest import make_controller
from tests.fakes import FakePool, FakeRegistry
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway_process import GatewayProcess
from tests.support.prometheus import PrometheusServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
TOKEN = "outage-gateway-token"
MODEL = "chat"
POLICY = {"name": "outage", "quantize": {"enabled": False}, "shadow": {"duration_seconds": 0},
          "canary": {"steps": [50], "step_seconds": 600},
          "analysis": {"settle_seconds": 0, "latency_metrics": [], "max_inconclusive_seconds": 600}}


class UpstreamPool(FakePool):
    """Every server the fake pool starts answers at the one real upstream."""

    def __init__(self, url: str):
        super().__init__()
        self.url = url

    def ensure(self, model, version, artifact_dir):
        served = super().ensure(model, version, artifact_dir)
        self.servers[(model, version)] = Served(model, version, self.url, served.state)
        return self.servers[(model, version)]


class Load:
    """Chat requests through the gateway, one after another, until stopped; failures are expected."""

    def __init__(self, url: str):
        self.url, self._stop = url, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        with httpx.Client(timeout=5) as http:
            while not self._stop.is_set():
                try:
                    http.post(f"{self.url}/v1/chat/completions", json=body)
                except httpx.HTTPError:
                    time.sleep(0.05)                           # the gateway is down for a moment
                time.sleep(0.005)

    def __enter__(self) -> "Load":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)


def _count(prom: PrometheusServer, release: str, track: str) -> float:
    rows = prom.query(f'sum(relctl_requests_total{{release="{release}",track="{track}",mode="live"}})')
    return float(rows[0]["value"][1]) if rows else 0.0


def test_gateway_restart_restores_weights_in_one_tick_and_resets_the_window(tmp_path):
    upstream = FakeOpenAI().start()
    gateway = GatewayProcess(tmp_path / "gateway", TOKEN, "--log-level", "WARNING").start()
    prom = PrometheusServer(tmp_path / "prometheus").start()
    router = EmbeddedGatewayRouter(gateway.url, TOKEN)
    ctx = make_controller(tmp_path, router=router, pool=UpstreamPool(upstream.url),
                          registry=FakeRegistry(tmp_path, model=MODEL), metrics=PrometheusProvider(prom.url))
    release = ctx.store.create(MODEL, "2", "1", POLICY, ctx.clock())
    try:
        prom.add_target(f"127.0.0.1:{gateway.port}", name="gateway")
        with Load(gateway.url):
            r = release
            for _ in range(10):                              # deploy, canary at 50 %, the window's baseline
                ctx.clock.advance(2)
                r = reconcile(ctx, r.id)
                ctx.jobs.join(30)      # the deployment's download job (a thread) ends before the next tick
                if r.phase == Phase.CANARY and r.status["analysis"]["current"]["baseline"] is not None:
                    break
                time.sleep(1.5)                              # a scrape or two between ticks
            assert r.phase == Phase.CANARY, r.status.get("verdict")
            routed = router.current(MODEL)
            assert routed.weights == {"stable": 50.0, "candidate": 50.0}
            baseline = r.status["analysis"]["current"]["baseline"]
            prom.wait_for(f'sum(relctl_requests_total{{release="{r.id}",track="stable"}}) > '
                          f'{baseline["stable"]["requests"] + 100}')
            ctx.clock.advance(2)
            r = reconcile(ctx, r.id)                         # judged once: evidence from before the restart
            assert r.status["analysis"]["current"]["last"]["candidate"]["requests"] > 0, r.status["verdict"]
            before = _count(prom, r.id, "stable")

            gateway.kill()
            gateway.start()                                  # same port, empty memory
            assert router.current(MODEL) is None
            ctx.clock.advance(2)
            r = reconcile(ctx, r.id)                         # one tick
            assert router.current(MODEL) == routed            # the split, restored from the store
            prom.wait_for(f'sum(relctl_requests_total{{release="{r.id}",track="stable"}}) < {before}',
                          bool, timeout=30)                    # Prometheus has scraped the fresh counters
            ctx.clock.advance(2)
            r = reconcile(ctx, r.id)
            assert r.status["verdict"]["decision"] == "inconclusive"
            assert "counters reset" in r.status["verdict"]["reason"], r.status["verdict"]
            for _ in range(3):                               # judged again from the new baseline
                time.sleep(1.5)
                ctx.clock.advance(2)
                r = reconcile(ctx, r.id)
            assert r.phase == Phase.CANARY and r.status["verdict"]["decision"] == "continue", r.status["verdict"]
            window = r.status["analysis"]["current"]["last"]
            assert window["candidate"]["requests"] > 0 and window["candidate"]["errors"] == 0
            assert len(r.status["analysis"]["closed"]) == 1   # the evidence before the restart is kept
    finally:
        gateway.stop()
        prom.stop()
        upstream.stop()
