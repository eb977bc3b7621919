"""Prometheus down while a canary is judged (stopped: connections refused; hung: SIGSTOP, reads time
out): no reading is no verdict, and after `analysis.max_inconclusive_seconds` the release pauses —
never a promotion, however long it soaked. A hung server costs a tick one read timeout, not more.

Real: Prometheus scraping the gateway's own metric families (GatewayMetrics, served over HTTP
and fed here as the gateway would), the PrometheusProvider, the analyzer, the store and the loop.
In-memory: pool, router and registry (tests/fakes).
"""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from prometheus_client import start_http_server

from controller.analysis.providers.prometheus import PrometheusProvider
from controller.domain.phases import Phase
from controller.gateway.metrics import GatewayMetrics
from controller.ports import free_port
from controller.reconcile.loop import reconcile
from tests.conftest import make_controller
from tests.support.prometheus import PrometheusServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
POLICY = {"name": "outage", "quantize": {"enabled": False}, "shadow": {"duration_seconds": 0},
          "canary": {"steps": [20], "step_seconds": 30},
          "analysis": {"settle_seconds": 0, "min_requests": 20, "min_soak_seconds": 5, "latency_metrics": [],
                       "max_inconclusive_seconds": 30}}
READ_TIMEOUT_S = 3.0


class Traffic:
    """Healthy live traffic on both tracks of one release, counted in the gateway's metric families."""

    def __init__(self, release: str) -> None:
        self.metrics = GatewayMetrics()
        self.tracks = [(self.metrics.track("chat", "1", "stable", release, "live"), 8),
                       (self.metrics.track("chat", "2", "candidate", release, "live"), 2)]
        self.port, self._stop = free_port(), threading.Event()
        self._server, _ = start_http_server(self.port, addr="127.0.0.1", registry=self.metrics.registry)
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            for track, n in self.tracks:
                track.requests.inc(n)

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()


def _wait_stopped(pid: int) -> None:
    """SIGSTOP is asynchronous: wait until every thread of the process is stopped (state T)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        states = {Path(f"{task}/stat").read_text().rsplit(")", 1)[1].split()[0]
                  for task in Path(f"/proc/{pid}/task").iterdir()}
        if states == {"T"}:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} did not stop: {states}")


@pytest.mark.parametrize("outage", ["stopped", "hung"])
def test_prometheus_down_is_inconclusive_then_pauses_never_promotes(tmp_path, outage):
    ctx = make_controller(tmp_path)
    release = ctx.store.create("chat", "2", "1", POLICY, ctx.clock())
    prom = PrometheusServer(tmp_path / "prometheus").start()
    pid = prom._proc.pid
    ctx.metrics = PrometheusProvider(prom.url, timeout_seconds=READ_TIMEOUT_S)
    traffic = Traffic(release.id)
    try:
        prom.add_target(f"127.0.0.1:{traffic.port}", name="gateway")
        prom.wait_for(f'sum(relctl_requests_total{{release="{release.id}",track="candidate"}}) > 0')
        r = release
        for _ in range(10):                                   # deploy, canary, first window's baseline
            ctx.clock.advance(2)
            r = reconcile(ctx, r.id)
            ctx.jobs.join(30)          # the deployment's download job (a thread) ends before the next tick
            if r.phase == Phase.CANARY and r.status["analysis"]["current"]["baseline"] is not None:
                break
        assert r.phase == Phase.CANARY and r.status["verdict"]["decision"] == "continue", r.status.get("verdict")

        if outage == "stopped":
            prom.stop()
        else:
            os.kill(pid, signal.SIGSTOP)
            _wait_stopped(pid)
        ctx.clock.advance(2)
        started = time.monotonic()
        r = reconcile(ctx, r.id)
        assert time.monotonic() - started < 1.8 * READ_TIMEOUT_S   # one timeout at most, never retried
        assert r.phase == Phase.CANARY and r.status["verdict"]["decision"] == "inconclusive", r.status["verdict"]
        assert r.status["verdict"]["reason"].startswith("metrics unavailable: query failed")
        for _ in range(4):                                    # past max_inconclusive_seconds and the step's soak
            ctx.clock.advance(10)
            r = reconcile(ctx, r.id)
    finally:
        if outage == "hung":
            os.kill(pid, signal.SIGCONT)
        traffic.stop()
        prom.stop()

    assert r.phase == Phase.PAUSED and r.paused_from == Phase.CANARY, r.reason
    assert "metrics inconclusive for 40 s: metrics unavailable" in r.reason, r.reason
    transitions = [e for e in ctx.store.events(r.id) if e["kind"] == "transition"]
    assert transitions[-1]["to_phase"] == "paused" and "query failed" in transitions[-1]["reason"]
    assert not any(e["to_phase"] == "promoting" for e in transitions)
    assert ctx.router.weight("chat") == 20.0                  # paused: the canary's split is frozen, not widened
