"""bench/controller_scale.py in quick mode (50 canaries) against a real Prometheus.

The bench starts its own Prometheus (Debian package) and the series exporter process; the
controller runs with the real store, loop, workers, judge and batched provider on fakes
for pool, router and registry. Here: its JSON carries every figure, and the breach led the
judge to roll the faulty canaries back (candidate weight 0 in the router), and only those.
"""
from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import start_http_server

from controller.analysis.providers.batched import BatchedProvider
from controller.analysis.providers.prometheus import PrometheusProvider
from controller.ports import free_port
from tests.support.prometheus import PrometheusServer
from tests.support.series_exporter import GatewaySeries

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FIELDS = ("releases", "judged_per_release_per_second", "breach_to_zero_weight_p99_seconds",
          "rollback_seconds_alone", "rollback_seconds_beside_slow_quantization", "peak_rss_mb")


def test_quick_bench_rolls_back_breached_canaries_from_real_prometheus():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "controller_scale.py"), "--quick", "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(key in out for key in FIELDS), out
    assert out["releases"] == 50
    # every breached canary reached weight 0, in finite time, and no healthy one was touched
    assert out["breaches"] == out["breaches_rolled_back"] == 10
    assert out["phases_after"] == {"canary": 40, "rolled_back": 10}
    for key in FIELDS[1:]:   # null would mean a breach that never reached weight 0
        assert out[key] is not None and math.isfinite(out[key]) and out[key] > 0, (key, out[key])
    assert out["breach_to_zero_weight_p99_seconds"] < 30
    assert out["judged_per_release_per_second"] > 0.1


def test_batched_reads_equal_per_release_reads_on_real_prometheus(tmp_path):
    """Same Prometheus, same gateway series: the batched snapshot gives every release exactly the
    Measurement that PrometheusProvider's own per-release queries give (latency thresholds too)."""
    releases = [GatewaySeries("chat", f"rel-{i}") for i in range(3)]
    rnd = random.Random(3)
    for i, series in enumerate(releases):
        for _ in range(20 + 10 * i):            # different counts per release, then frozen
            series.tick(rnd)
    servers = []
    with PrometheusServer(tmp_path / "prom", scrape_interval_seconds=1.0) as prom:
        for i, series in enumerate(releases):
            port = free_port()
            servers.append(start_http_server(port, addr="127.0.0.1", registry=series.registry)[0])
            prom.add_target(f"127.0.0.1:{port}", name=f"gateway-{i}")
        prom.wait_for('count(relctl_requests_total{mode="live"})', lambda rows: rows and rows[0]["value"][1] == "6",
                      timeout=60)
        direct = PrometheusProvider(prom.url)
        batched = BatchedProvider(direct, refresh_seconds=0.5)
        thresholds = {"e2e_p99": 1.0, "e2e_p50": 0.5, "ttft_p95": 0.25}
        for i in range(3):
            rel = f"rel-{i}"
            one, many = direct.read("chat", rel, thresholds), batched.read("chat", rel, thresholds)
            assert one.ok and one == many, (rel, one, many)
            assert one.candidate.latency_over["e2e_p99"] > 0 and one.shadow.pairs > 0
        assert batched.refreshes == 1
    for server in servers:
        server.shutdown()
