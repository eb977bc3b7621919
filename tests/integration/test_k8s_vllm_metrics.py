"""The `vllm-pods` metric provider on a real Prometheus scraping vLLM pods' own series.

For the Gateway API modes without relctl's gateway (request-mirror, off). Each pod is
tests/support/vllm_pod.py: vLLM 0.32's series, names, labels and buckets (the HTTP ones from
prometheus-fastapi-instrumentator set up as vLLM does), exposed on /metrics; Prometheus scrapes
each with the `namespace` and `pod` target labels a PodMonitor gives. The provider is built by
name from the settings, over a real SQLite store holding the release. Checked: exact per-track
counts (5xx errors, 503 admission rejections as overload, 400s as requests only, latency over
vLLM bucket edges), pods of other versions and namespaces left out, the Analyzer rolling back a
failing canary on these series unchanged, and the shadow phase and an unscraped version read as
errors that say why.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.orm import sessionmaker

from controller import backends
from controller.analysis.analyzer import Analyzer
from controller.analysis.providers.vllm import NO_SHADOW, VllmPodsProvider
from controller.analysis.types import Decision
from controller.config import Settings
from controller.k8s.settings import KubernetesSettings
from controller.store.db import make_engine, migrate
from controller.store.models import ReleaseRow
from controller.store.releases import ReleaseStore
from policies.analysis import AnalysisPolicy
from tests.support.prometheus import PrometheusServer
from tests.support.vllm_pod import E2E_BUCKETS, VllmPod

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
NOW = dt.datetime(2026, 12, 3, 10, 0, tzinfo=dt.UTC)
TENANT_NS = "relctl-bank-a"                  # the tenant's namespace (controller/tenants.py default)


@dataclass
class Stack:
    prom: PrometheusServer
    pods: dict[str, VllmPod]               # pod name -> its stand-in
    provider: VllmPodsProvider
    sessions: sessionmaker
    http: httpx.Client

    def send(self, pod: str, n: int, outcome: str = "ok", e2e: float = 0.4, ttft: float = 0.05) -> None:
        for _ in range(n):
            self.http.post(f"{self.pods[pod].url}/v1/chat/completions",
                           json={"outcome": outcome, "e2e": e2e, "ttft": ttft})

    def scraped(self, pod: str, requests: int, timeout: float = 30) -> None:
        """Wait until Prometheus holds `requests` OpenAI requests of that pod."""
        self.prom.wait_for(f'sum(http_requests_total{{pod="{pod}",handler="/v1/chat/completions"}})',
                           lambda rows: rows and round(float(rows[0]["value"][1])) == requests, timeout)

    def release(self, model: str, candidate: str, stable: str | None, phase: str, deployed: str | None = None) -> str:
        with self.sessions.begin() as s:       # one active release per model: end the test's earlier ones
            s.execute(update(ReleaseRow).where(ReleaseRow.model == model).values(phase="aborted"))
        rid = ReleaseStore(self.sessions).create(model, candidate, stable, {}, NOW).id
        with self.sessions.begin() as s:
            row = s.get(ReleaseRow, rid)
            row.phase = phase
            row.status = {"deployment": {"version": deployed}} if deployed else {}
        return rid


PODS = {  # pod name -> (namespace, served model name)
    "chat-v1-5d8f7c9b8-a1b2c": (TENANT_NS, "chat"),      # chat's stable, two pods
    "chat-v1-5d8f7c9b8-d3e4f": (TENANT_NS, "chat"),
    "chat-v3-6c7d8e9f0-g5h6i": (TENANT_NS, "chat"),      # chat's candidate track: the deployed build v3
    "chat-v10-7a8b9c0d1-j7k8l": (TENANT_NS, "chat"),     # another version: its name starts like v1's
    "chat-v1-5d8f7c9b8-m9n0p": ("relctl", "chat"),       # v1's name, wrong namespace
    "summarize-v4-8b9c0d1e2-q1r2s": ("relctl", "summarize"),
    "summarize-v5-9c0d1e2f3-t3u4v": ("relctl", "summarize"),
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    tmp = Path(tmp_path_factory.mktemp("vllm-metrics"))
    prom = PrometheusServer(tmp / "prometheus", scrape_interval_seconds=0.5).start()
    pods = {name: VllmPod(model).start() for name, (_, model) in PODS.items()}
    for name, (namespace, _) in PODS.items():
        prom.add_target(f"127.0.0.1:{pods[name].port}", {"namespace": namespace, "pod": name}, name=name)
    engine = make_engine(f"sqlite:///{tmp / 'relctl.db'}")
    migrate(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    settings = Settings(workdir=tmp, prometheus_url=prom.url, metrics="vllm-pods", router="gateway-api",
                        pool="kubernetes", kubernetes=KubernetesSettings(mirror_mode="request-mirror"),
                        tenants={"bank-a": {"models": ["chat"]}})
    provider = backends.make("metrics", settings.metrics, settings, sessions)
    with httpx.Client(timeout=5) as http:
        try:
            yield Stack(prom, pods, provider, sessions, http)
        finally:
            for pod in pods.values():
                pod.stop()
            prom.stop()


def test_counts_per_track_are_the_versions_pods_series(stack: Stack) -> None:
    a, b, cand = "chat-v1-5d8f7c9b8-a1b2c", "chat-v1-5d8f7c9b8-d3e4f", "chat-v3-6c7d8e9f0-g5h6i"
    stack.send(a, 40)
    stack.send(a, 1, "bad_request")             # a client's error: a request, not the version's error
    stack.send(b, 39, e2e=0.6)
    stack.send(b, 1, e2e=3.0)                   # over the 2.5 s edge
    stack.send(cand, 20, e2e=1.2, ttft=0.3)
    stack.send(cand, 5, "error", e2e=1.2, ttft=0.3)
    stack.send(cand, 3, "rejected")             # admission control's 503: overload, not an error
    for noise in ("chat-v10-7a8b9c0d1-j7k8l", "chat-v1-5d8f7c9b8-m9n0p"):
        stack.send(noise, 30)
        stack.send(noise, 10, "error")
    for pod, n in ((a, 41), (b, 40), (cand, 28), ("chat-v10-7a8b9c0d1-j7k8l", 40), ("chat-v1-5d8f7c9b8-m9n0p", 40)):
        stack.scraped(pod, n)
    # candidate_version 2 is the full-precision one; the candidate track serves the build v3 (status.deployment)
    rid = stack.release("chat", "2", "1", "canary", deployed="3")

    m = stack.provider.read("chat", rid, {"e2e_p99": 2.5, "ttft_p99": 0.1})

    assert m.error is None and m.shadow is None
    assert (m.stable.requests, m.stable.errors, m.stable.overload) == (81, 0, 0)
    assert m.stable.latency_over == {"e2e_p99": 1, "ttft_p99": 0}
    assert (m.candidate.requests, m.candidate.errors, m.candidate.overload) == (28, 5, 3)
    assert m.candidate.errors_by_class == {"http_5xx": 5, "overload": 3}
    assert m.candidate.latency_over == {"e2e_p99": 0, "ttft_p99": 25}

    hist = stack.provider.stable_latency("chat", rid, "e2e")
    assert hist.error is None
    assert sorted(le for le in hist.buckets if math.isfinite(le)) == list(E2E_BUCKETS)
    assert hist.buckets[math.inf] == 80 and hist.buckets[2.5] == 79

    bad = stack.provider.read("chat", rid, {"e2e_p99": 2.4})
    assert bad.error is not None and "2.4 s is not a bucket edge" in bad.error


def test_the_analyzer_rolls_back_a_failing_canary_on_these_series(stack: Stack) -> None:
    stable, cand = "summarize-v4-8b9c0d1e2-q1r2s", "summarize-v5-9c0d1e2f3-t3u4v"
    cfg = AnalysisPolicy(settle_seconds=0, latency_min_samples=20, guard_min_requests=20)
    analyzer = Analyzer(stack.provider, cfg)
    rid = stack.release("summarize", "5", "4", "canary")
    stack.send(stable, 40, e2e=0.4)
    stack.scraped(stable, 40)

    state = analyzer.start_window("summarize", rid, 0.25, NOW, {})
    assert state["thresholds"]["e2e_p50"] in E2E_BUCKETS, state["threshold_notes"]
    verdict, state = analyzer.judge("summarize", rid, "canary", NOW + dt.timedelta(seconds=1), state)
    assert verdict.reason == "window baseline taken"

    stack.send(stable, 90, e2e=0.4)
    stack.send(cand, 20, e2e=0.4)
    stack.send(cand, 10, "error", e2e=0.4)
    stack.scraped(stable, 130)
    stack.scraped(cand, 30)
    verdict, state = analyzer.judge("summarize", rid, "canary", NOW + dt.timedelta(seconds=20), state)

    assert verdict.decision == Decision.ROLLBACK, verdict
    assert "hard guard" in verdict.reason and "over 30 requests" in verdict.reason


def test_shadow_and_unscraped_versions_read_as_errors_that_say_why(stack: Stack) -> None:
    shadow = stack.release("summarize", "5", "4", "shadow")
    m = stack.provider.read("summarize", shadow, {})
    assert m.error == NO_SHADOW
    state = Analyzer(stack.provider, AnalysisPolicy(settle_seconds=0)).start_window("summarize", shadow, 0.0, NOW, {})
    verdict, _ = Analyzer(stack.provider, AnalysisPolicy(settle_seconds=0)).judge(
        "summarize", shadow, "shadow", NOW, state)
    assert verdict.decision == Decision.INCONCLUSIVE and "RequestMirror" in verdict.reason

    unscraped = stack.release("summarize", "5", "9", "canary")
    m = stack.provider.read("summarize", unscraped, {})
    assert m.error is not None and "no http_requests_total series" in m.error
    assert 'pod=~"summarize-v9-[a-z0-9]+-[a-z0-9]+"' in m.error and "PodMonitor" in m.error

    assert "no release rel-missing" in (stack.provider.read("summarize", "rel-missing", {}).error or "")
