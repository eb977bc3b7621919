"""Whole releases in mirror_mode `request-mirror`, judged by the `vllm-pods` provider.

No relctl gateway is in the path: the HTTPRoute's backendRefs carry the split. Real: the reconcile
loop and workers, the store (SQLite), the pool `kubernetes` and the router `gateway-api` built by
name from the settings (official client, kubeconfig), the metric provider `vllm-pods` built by
name, a real Prometheus scraping each pod's /metrics with the `namespace` and `pod` labels a
PodMonitor gives. Stand-ins: the API server (tests/support/k8s_emulator.py), each vLLM pod
(tests/support/vllm_pod.py: vLLM 0.32's series as vLLM writes them) and the cluster's gateway
(ClusterGateway below: reads the HTTPRoute from the API server and sends each request to the
backend its weights pick, plus the RequestMirror copy). The policy skips shadow (it cannot be
judged without relctl's gateway). A healthy release goes through its canary steps to promotion;
one whose candidate answers 30 % 500s is rolled back at its first step.
"""
from __future__ import annotations

import asyncio
import random
import threading

import aiohttp
import httpx
import pytest
import yaml
from sqlalchemy.orm import sessionmaker

from controller import backends
from controller.config import Settings, WatchedModel
from controller.domain.phases import Phase
from controller.k8s import names
from controller.k8s.settings import KubernetesSettings
from controller.reconcile.context import utc_now
from controller.reconcile.workers import ReleaseWorkers
from controller.service import create_release
from controller.store.db import make_engine, migrate
from policies.loader import load_policy
from tests.conftest import make_controller
from tests.integration.test_k8s_release import _transitions_to, drive, registry_with
from tests.support.k8s_emulator import KubeEmulator, Kubelet
from tests.support.prometheus import PrometheusServer
from tests.support.vllm_pod import E2E_BUCKETS, VllmPod

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

NS = "relctl"
MODELS = ("good", "bad")


class ClusterGateway:
    """The cluster's gateway, as far as relctl needs one: every 0.1 s, per model, 5 requests split by the
    HTTPRoute's backendRefs weights (Service name -> that version's pod), and RequestMirror's copies.
    `failing[name]` is the share of requests a version's pod fails (it then records what vLLM records
    for a request that ends in an engine error: a 500)."""

    def __init__(self, emu: KubeEmulator, pods: dict[str, VllmPod]) -> None:
        self.emu, self.pods = emu, pods
        self.failing: dict[str, float] = {}
        self._rnd = random.Random(7)
        self._stop = threading.Event()
        threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True).start()

    def _route(self, model: str) -> tuple[list[tuple[str, int]], tuple[str, int] | None]:
        route = self.emu.get(f"/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes/{model}")
        if route is None:
            return [], None
        rule = route["spec"]["rules"][0]
        refs = [(r["name"], r.get("weight", 1)) for r in rule["backendRefs"]]
        mirror = next((f["requestMirror"] for f in rule.get("filters", []) if f["type"] == "RequestMirror"), None)
        return refs, (mirror["backendRef"]["name"], mirror.get("percent", 100)) if mirror else None

    async def _run(self) -> None:
        async with aiohttp.ClientSession() as http:
            while not self._stop.is_set():
                sends = []
                for model in MODELS:
                    refs, mirror = self._route(model)
                    refs = [(name, w) for name, w in refs if w > 0 and name in self.pods]
                    for _ in range(5 if refs else 0):
                        sends.append(self._one(http, self._rnd.choices(*zip(*refs))[0]))
                        if mirror and mirror[0] in self.pods and self._rnd.random() * 100 < mirror[1]:
                            sends.append(self._one(http, mirror[0]))
                await asyncio.gather(*sends)
                await asyncio.sleep(0.1)

    async def _one(self, http: aiohttp.ClientSession, backend: str) -> None:
        outcome = "error" if self._rnd.random() < self.failing.get(backend, 0.0) else "ok"
        body = {"outcome": outcome, "e2e": self._rnd.uniform(0.3, 0.7), "ttft": self._rnd.uniform(0.02, 0.09)}
        try:
            async with http.post(f"{self.pods[backend].url}/v1/chat/completions", json=body) as resp:
                await resp.read()
        except aiohttp.ClientError:
            pass

    def stop(self) -> None:
        self._stop.set()


def test_releases_are_judged_on_the_vllm_pods_series(tmp_path, monkeypatch):
    policy = load_policy("demo").model_dump(mode="json")
    policy.update(quantize={**policy["quantize"], "enabled": False}, shadow={"duration_seconds": 0},
                  canary={"steps": [25, 50], "step_seconds": 5},
                  analysis={**policy["analysis"], "min_requests": 30, "min_soak_seconds": 4, "settle_seconds": 1,
                            "latency_metrics": ["e2e"], "latency_min_samples": 20},
                  kubernetes={"standby_seconds": 0})
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    prom = PrometheusServer(tmp_path / "prometheus", scrape_interval_seconds=0.5).start()
    pods: dict[str, VllmPod] = {}

    def pod_starts(deployment: str) -> None:       # the kubelet starts the pod; Prometheus scrapes it
        if deployment not in pods:
            model = deployment.split("-v")[0]
            pods[deployment] = VllmPod(model).start()
            prom.add_target(f"127.0.0.1:{pods[deployment].port}",
                            {"namespace": NS, "pod": f"{deployment}-5d8f7c9b8-x1y2z"}, name=deployment)

    with KubeEmulator() as emu:
        kubelet = Kubelet(emu, ready_after=1.0, on_pod=pod_starts).run()
        gateway = ClusterGateway(emu, pods)
        kubeconfig = emu.write_kubeconfig(tmp_path / "kubeconfig")
        k = KubernetesSettings(namespace=NS, kubeconfig=str(kubeconfig), mirror_mode="request-mirror",
                               request_timeout_seconds=5)
        settings = Settings(workdir=tmp_path, pool="kubernetes", router="gateway-api", metrics="vllm-pods",
                            prometheus_url=prom.url, kubernetes=k,
                            models=[WatchedModel(name=m, policy=str(tmp_path / "policy.yaml")) for m in MODELS])
        engine = make_engine(f"sqlite:///{tmp_path / 'relctl.db'}")
        migrate(engine)
        sessions = sessionmaker(engine, expire_on_commit=False)
        ctx = make_controller(tmp_path, registry=registry_with(tmp_path, *MODELS), clock=utc_now,
                              **{kind: backends.make(kind, name, settings, sessions)
                                 for kind, name in (("pool", "kubernetes"), ("router", "gateway-api"),
                                                    ("metrics", "vllm-pods"))})
        for model in MODELS:       # the champions have served before: their pods have a latency history
            stable = names.version_name(model, "1")
            pod_starts(stable)
            for _ in range(40):
                httpx.post(f"{pods[stable].url}/v1/chat/completions", json={"e2e": 0.45, "ttft": 0.05})
            prom.wait_for(f'sum(vllm:e2e_request_latency_seconds_count{{pod=~"{stable}-.*"}})',
                          lambda rows: rows and float(rows[0]["value"][1]) >= 40)
        workers = ReleaseWorkers(ctx, max_workers=1)
        good = create_release(ctx, "good", "2", tmp_path / "policy.yaml")
        bad = create_release(ctx, "bad", "2", tmp_path / "policy.yaml")

        def the_cluster_acts() -> None:
            if ctx.store.get(bad.id).phase == Phase.CANARY:
                gateway.failing[names.version_name("bad", "2")] = 0.3

        def both_ended() -> bool:
            return {ctx.store.get(r).phase for r in (good.id, bad.id)} <= {Phase.SUCCEEDED, Phase.ROLLED_BACK}

        try:
            seconds = drive([workers], both_ended, 150, each=the_cluster_acts)
            drive([workers], lambda: all(ctx.store.get(r).settled for r in (good.id, bad.id)), 20)
            route = emu.get(f"/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes/good")
        finally:
            workers.shutdown()
            gateway.stop()
            kubelet.stop()
            for pod in pods.values():
                pod.stop()
            prom.stop()
    print(f"\nboth releases ended after {seconds:.1f} s")
    g, b = ctx.store.get(good.id), ctx.store.get(bad.id)
    assert g.phase == Phase.SUCCEEDED, g.reason
    assert [t for _, t in _transitions_to(ctx, good.id)] == ["deploying", "canary", "canary", "promoting",
                                                             "succeeded"]
    assert b.phase == Phase.ROLLED_BACK, b.reason
    assert b.reason.startswith("canary step 1") and ("hard guard" in b.reason or "errors regression" in b.reason)
    analysis = g.status["analysis"]
    assert set(analysis["thresholds"]) == {"e2e_p50", "e2e_p95", "e2e_p99"}, analysis["threshold_notes"]
    assert set(analysis["thresholds"].values()) <= set(E2E_BUCKETS)     # fixed on vLLM's own bucket edges
    weights = {r["name"]: r["weight"] for r in route["spec"]["rules"][0]["backendRefs"] if r["weight"]}
    assert weights == {"good-v2": 10000}
