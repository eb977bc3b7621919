"""Whole releases driven by the controller against the Kubernetes API stand-in.

Real: the reconcile loop and workers, the store (SQLite), the pool backend `kubernetes` (built by
name from the settings, through the official client and a kubeconfig) and the router backend
`gateway-api` in its default mode `relctl-gateway` (the HTTPRoute on the stand-in, the split and
the paired shadow in relctl's real gateway process, programmed through its admin API), a real
Prometheus scraping that gateway, and the judge reading it. Stand-ins: the API server
(tests/support/k8s_emulator.py, whose Kubelet makes each Deployment's pod and flips it ready),
the vLLM pods (one small OpenAI-compatible server per pod, on 127.0.0.1), the cluster's DNS
(ClusterDns below) and the registry (tests/fakes: the Kubernetes pods fetch models themselves).

- a healthy release: quantize (a Job) -> deploy -> shadow -> canary 25 %, 50 % -> promote, the HTTPRoute and the
  gateway read back at 100 % on the new version;
- a faulty one (its pod starts failing under canary load): rolled back, weights back to stable;
- a lost lease: two replicas with leader election; the leader is cut off from the API server in
  the middle of a canary, stops acting within its renew deadline, and the other replica takes
  the lease and finishes the release from the store.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import random
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
import yaml
from aiohttp import web

from controller import backends
from controller.config import Settings, WatchedModel
from controller.domain.phases import Phase
from controller.k8s import routes
from controller.k8s.api import KubeApi, api_client
from controller.k8s.leader import LeaderElector
from controller.k8s.quantize_job import job_name
from controller.k8s.settings import KubernetesSettings
from controller.ports import free_port
from controller.reconcile.context import utc_now
from controller.reconcile.workers import ReleaseWorkers
from controller.registry import conventions as rc
from controller.service import create_release
from controller.traffic.embedded import EmbeddedGatewayRouter
from controller.traffic.gateway_api import GatewayApiRouter
from policies.loader import load_policy
from tests.conftest import make_controller
from tests.fakes import FakeRegistry
from tests.support.gateway_process import GatewayProcess
from tests.support.k8s_emulator import PASSING_FIGURES, KubeEmulator, Kubelet, job_exits
from tests.support.prometheus import PrometheusServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

NS = "relctl"
TOKEN = "k8s-release-token"
MODELS = ("good", "bad", "lease")
LEASE = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/relctl-controller"


class Pods:
    """The vLLM pods: one OpenAI-compatible server per pod on 127.0.0.1; `failing[name]` is the share
    of requests a pod answers with HTTP 500."""

    def __init__(self) -> None:
        self.failing: dict[str, float] = {}
        self.ports: dict[str, int] = {}
        self._rnd = random.Random(11)
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()

    def start(self, name: str) -> None:
        if name not in self.ports:
            self.ports[name] = asyncio.run_coroutine_threadsafe(self._serve(name), self._loop).result(10)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    async def _serve(self, name: str) -> int:
        async def chat(request: web.Request) -> web.Response:
            body = await request.json()
            if self._rnd.random() < self.failing.get(name, 0.0):
                return web.json_response({"error": {"message": "CUDA error: an illegal memory access"}}, status=500)
            return web.json_response({"id": "x", "object": "chat.completion", "model": body.get("model"),
                                      "choices": [{"index": 0, "finish_reason": "stop",
                                                   "message": {"role": "assistant", "content": "ok"}}],
                                      "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}})
        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return port


class ClusterDns:
    """What the cluster's DNS and a Service do for relctl's gateway: `http://<name>.<ns>.svc...` reaches
    the pod behind it. Backend URLs are rewritten to the pods' servers on their way to the gateway's
    admin API and back again, so the controller sees the Service URLs it wrote."""

    def __init__(self, gateway: EmbeddedGatewayRouter, pods: Pods) -> None:
        self.gateway, self.pods = gateway, pods
        self._service_of: dict[str, str] = {}

    def _to_pod(self, url: str) -> str:
        pod = self.pods.url(urlsplit(url).hostname.split(".")[0])
        self._service_of[pod] = url
        return pod

    def _map(self, spec, convert):
        return dataclasses.replace(spec, backends=tuple(dataclasses.replace(b, url=convert(b.url))
                                                        for b in spec.backends))

    def apply(self, spec) -> None:
        self.gateway.apply(self._map(spec, self._to_pod))

    def current(self, model: str):
        spec = self.gateway.current(model)
        return None if spec is None else self._map(spec, lambda url: self._service_of.get(url, url))

    def remove(self, model: str) -> None:
        self.gateway.remove(model)

    def set_fault(self, model, track, fault) -> None:
        self.gateway.set_fault(model, track, fault)


class Load:
    """About `rps` chat requests per second per model through relctl's gateway."""

    def __init__(self, url: str, models, rps: float = 50.0) -> None:
        self.url, self.models, self.rps = url, models, rps
        self._stop = threading.Event()
        threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True).start()

    async def _run(self) -> None:
        async with aiohttp.ClientSession() as http:
            while not self._stop.is_set():
                t0 = time.monotonic()
                await asyncio.gather(*(self._one(http, m) for m in self.models for _ in range(5)))
                await asyncio.sleep(max(0.0, 5 / self.rps - (time.monotonic() - t0)))

    async def _one(self, http: aiohttp.ClientSession, model: str) -> None:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        try:
            async with http.post(f"{self.url}/v1/chat/completions", json=body) as resp:
                await resp.read()
        except aiohttp.ClientError:
            pass

    def stop(self) -> None:
        self._stop.set()


@dataclasses.dataclass
class Stack:
    emu: KubeEmulator
    prom: PrometheusServer
    gateway_url: str
    pods: Pods
    kubeconfig: Path
    policy: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("k8s-release")
    policy = load_policy("demo").model_dump(mode="json")
    policy.update(quantize={**policy["quantize"], "enabled": False}, shadow={"duration_seconds": 5},
                  canary={"steps": [25, 50], "step_seconds": 5},
                  analysis={**policy["analysis"], "min_requests": 30, "min_soak_seconds": 4, "settle_seconds": 1,
                            "latency_metrics": []},
                  kubernetes={"standby_seconds": 0})
    (tmp / "policy.yaml").write_text(yaml.safe_dump(policy))
    pods = Pods()
    gateway = GatewayProcess(tmp / "gateway", TOKEN).start()
    prom = PrometheusServer(tmp / "prometheus").start()
    with KubeEmulator() as emu:
        kubelet = Kubelet(emu, ready_after=1.0, on_pod=pods.start).run()
        kubeconfig = emu.write_kubeconfig(tmp / "kubeconfig")
        try:
            prom.add_target(f"127.0.0.1:{gateway.port}", name="gateway")
            load = Load(gateway.url, MODELS)
            yield Stack(emu, prom, gateway.url, pods, kubeconfig, tmp / "policy.yaml")
            load.stop()
        finally:
            kubelet.stop()
            gateway.stop()
            prom.stop()


def replica(stack: Stack, workdir: Path, registry: FakeRegistry, name: str, monkeypatch):
    """One controller replica: pool and metrics built by name from the settings, the gateway-api
    router with relctl's gateway behind the cluster's DNS; its API calls carry User-Agent relctl/<name>."""
    monkeypatch.setenv("POD_NAME", name)
    monkeypatch.setenv("RELCTL_GATEWAY_TOKEN", TOKEN)
    k = KubernetesSettings(namespace=NS, kubeconfig=str(stack.kubeconfig), relctl_gateway_admin_url=stack.gateway_url,
                           lease_seconds=4, renew_deadline_seconds=2.5, request_timeout_seconds=5, job_poll_seconds=0.2)
    settings = Settings(workdir=workdir, pool="kubernetes", router="gateway-api", metrics="prometheus",
                        quantize_runner="kubernetes", prometheus_url=stack.prom.url, kubernetes=k,
                        models=[WatchedModel(name=m, policy=str(stack.policy)) for m in MODELS])
    api = KubeApi(api_client(k), timeout=5)
    router = GatewayApiRouter(api, k, gateway=ClusterDns(EmbeddedGatewayRouter(stack.gateway_url, TOKEN), stack.pods))
    ctx = make_controller(workdir, registry=registry, clock=utc_now, router=router,
                          pool=backends.make("pool", "kubernetes", settings, None),
                          metrics=backends.make("metrics", "prometheus", settings, None),
                          quantize_jobs=backends.make("quantize", "kubernetes", settings, None))
    return ctx, api


def registry_with(workdir: Path, *models: str) -> FakeRegistry:
    registry = FakeRegistry(workdir, model=models[0])
    for m in models[1:]:
        registry.versions[m] = {"1": {}, "2": {}}
        registry.aliases[(m, "champion")] = "1"
    return registry


def drive(workers: list[ReleaseWorkers], until, seconds: float, electors=(), each=lambda: None,
          began: dict | None = None) -> float:
    """Tick (electors, then workers, waiting for their reconciles) every 0.5 s until `until()`;
    `began[i]` collects when workers[i] started reconciles."""
    start, began = time.monotonic(), {} if began is None else began
    while time.monotonic() - start < seconds:
        for e in electors:
            e.tick()
        for i, w in enumerate(workers):
            at = time.time()
            if w.tick():
                began.setdefault(i, []).append(at)
                assert w.drain(30)                        # the tick's reconciles are done
        each()
        if until():
            return time.monotonic() - start
        time.sleep(0.5)
    raise AssertionError(f"not reached in {seconds:.0f} s")


def read_back(stack: Stack, ctx, model: str) -> tuple[dict, dict]:
    """(weights relctl wrote on the HTTPRoute, weights relctl's gateway serves), as the cluster holds them."""
    route = stack.emu.get(f"/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes/{model}")
    wanted = routes.desired_spec(route)
    live = EmbeddedGatewayRouter(stack.gateway_url, TOKEN).current(model)
    return ({b.version: wanted.weights[b.track] for b in wanted.backends},
            {b.version: live.weights[b.track] for b in live.backends})


def test_a_healthy_release_is_promoted_and_a_faulty_one_rolled_back(stack, tmp_path, monkeypatch):
    ctx, _ = replica(stack, tmp_path, registry_with(tmp_path, "good", "bad"), "solo", monkeypatch)
    workers = ReleaseWorkers(ctx, max_workers=1)
    quantized = yaml.safe_load(stack.policy.read_text())
    quantized["quantize"]["enabled"] = True
    good = create_release(ctx, "good", "2", quantized)        # quantized by a Job, then its build released
    bad = create_release(ctx, "bad", "2", stack.policy)
    job = f"/apis/batch/v1/namespaces/{NS}/jobs/{job_name(good.id)}"

    def the_cluster_acts():
        if (stack.emu.get(job) or {"status": 1}).get("status") is None:   # the Job, as quantize_entry.py: ...
            build = ctx.registry.add_version("good", {**rc.lineage_tags("2", "awq-w4-g128", PASSING_FIGURES),
                                                      rc.TAG_RELEASE_ID: good.id})       # ... registers the build
            job_exits(stack.emu, NS, job_name(good.id), {"status": "succeeded", "build_version": build,
                                                          "gate": {"passed": True, "reason": "within bounds"}})
        if ctx.store.get(bad.id).phase == Phase.CANARY:
            stack.pods.failing["bad-v2"] = 0.3                  # the bad candidate fails under live load

    def both_ended():
        return {ctx.store.get(r).phase for r in (good.id, bad.id)} <= {Phase.SUCCEEDED, Phase.ROLLED_BACK}

    try:
        seconds = drive([workers], both_ended, 150, each=the_cluster_acts)
        drive([workers], lambda: all(ctx.store.get(r).settled for r in (good.id, bad.id)), 20)   # effects held
    finally:
        workers.shutdown()
    print(f"\nboth releases ended after {seconds:.1f} s")
    g, b = ctx.store.get(good.id), ctx.store.get(bad.id)
    assert g.phase == Phase.SUCCEEDED, g.reason
    assert b.phase == Phase.ROLLED_BACK, b.reason
    assert b.reason.startswith("canary step") and ("hard guard" in b.reason or "errors regression" in b.reason)
    walked = _transitions_to(ctx, good.id)
    assert [t for _, t in walked] == ["quantizing", "evaluating", "deploying", "shadow", "canary", "canary",
                                      "promoting", "succeeded"], walked
    assert g.status["deployment"]["version"] == "3"                                  # the Job's build
    assert [t for _, t in _transitions_to(ctx, bad.id)][-2:] == ["rolling_back", "rolled_back"]
    assert "canary" in [t for _, t in _transitions_to(ctx, bad.id)]

    # Read back from the cluster: the HTTPRoute's recorded split and relctl's gateway agree.
    assert read_back(stack, ctx, "good") == ({"3": 100.0}, {"3": 100.0})
    assert read_back(stack, ctx, "bad") == ({"1": 100.0}, {"1": 100.0})
    assert ctx.registry.aliases[("good", "champion")] == "3" and ctx.registry.aliases[("bad", "champion")] == "1"
    deps = stack.emu.paths("/deployments/")
    assert f"/apis/apps/v1/namespaces/{NS}/deployments/good-v3" in deps
    assert not [d for d in deps if d.endswith(("good-v1", "bad-v2"))], deps    # the loser's pods are gone
    # Every write was a server-side apply as "relctl", or a delete.
    writes = [c for c in stack.emu.calls if c.agent == "relctl/solo" and c.method != "GET"]
    assert {c.method for c in writes} == {"PATCH", "DELETE"}
    assert not [c for c in ctx.registry.calls if c[0] == "register"]            # the Job registered the build
    assert all(c.query == {"fieldManager": "relctl", "force": "true"} for c in writes if c.method == "PATCH")


class WatchedStore:
    """A replica's store, recording when it writes (test instrumentation: it changes nothing)."""

    WRITES = {"save", "append_event", "mark_settled", "create", "flush_figures", "set_requested_action"}

    def __init__(self, store) -> None:
        self._store, self.writes = store, []

    def __getattr__(self, name):
        attr = getattr(self._store, name)
        if name not in self.WRITES:
            return attr

        def recorded(*args, **kwargs):
            self.writes.append((time.time(), name))
            return attr(*args, **kwargs)
        return recorded


def test_a_replica_that_loses_its_lease_mid_release_stops_and_the_other_finishes(stack, tmp_path, monkeypatch):
    registry = registry_with(tmp_path, "lease")
    a, api_a = replica(stack, tmp_path, registry, "a", monkeypatch)
    b, api_b = replica(stack, tmp_path, registry, "b", monkeypatch)        # the same store (one database)
    a.store, b.store = WatchedStore(a.store), WatchedStore(b.store)
    lead_a = LeaderElector(api_a, NS, "a", lease_seconds=4, renew_deadline=2.5)
    lead_b = LeaderElector(api_b, NS, "b", lease_seconds=4, renew_deadline=2.5)
    workers_a = ReleaseWorkers(a, max_workers=1, is_leader=lead_a.is_leader)
    workers_b = ReleaseWorkers(b, max_workers=1, is_leader=lead_b.is_leader)
    release = create_release(a, "lease", "2", stack.policy)
    electors, both = (lead_a, lead_b), [workers_a, workers_b]
    try:
        drive(both, lambda: a.store.get(release.id).phase == Phase.CANARY, 60, electors)
        assert lead_a.is_leader() and not lead_b.is_leader() and not b.store.writes
        renewed = stack.emu.get(LEASE)["spec"]["renewTime"]
        stack.emu.refuse("relctl/a", 503)                 # a is cut off from the API server
        cut = time.time()
        deadline = _stamp(renewed) + 2.5                  # a's last renewal + its renew deadline
        began: dict[int, list[float]] = {}
        drive(both, lambda: lead_b.is_leader(), 30, electors, began=began)
        taken = time.time()
        drive(both, lambda: b.store.get(release.id).phase in (Phase.SUCCEEDED, Phase.ROLLED_BACK), 90, electors,
              began=began)
        drive(both, lambda: True, 3, electors, began=began)
        ended = time.time()
    finally:
        for w in both:
            w.shutdown()
    r = b.store.get(release.id)
    assert r.phase == Phase.SUCCEEDED, r.reason
    # Not counting a's shutdown (ReleaseWorkers.shutdown flushes its buffered figures; the store's
    # optimistic lock makes that a no-op on a row b has written since).
    a_writes = [t for t, _ in a.store.writes if t < ended]
    a_calls = [c.at for c in stack.emu.calls if c.agent == "relctl/a" and "/leases/" not in c.path]
    print(f"\ncut at +0 s; a's renew deadline {deadline - cut:+.2f} s; a's last store write "
          f"{max(a_writes) - cut:+.2f} s, last cluster call {max(a_calls) - cut:+.2f} s; b leads at "
          f"{taken - cut:+.2f} s")
    # a starts no reconcile after its renew deadline; what one begun before it does ends before b acts.
    assert began[0] and max(began[0]) < deadline
    assert max(a_writes) < min(t for t, _ in b.store.writes) and max(a_calls) < taken   # never two writers at once
    assert taken >= _stamp(renewed) + 4 - 0.1                                 # b waited for the lease to expire
    lease = stack.emu.get(LEASE)["spec"]
    assert (lease["holderIdentity"], lease["leaseTransitions"]) == ("b", 1)
    assert [t for _, t in _transitions_to(b, release.id)][-2:] == ["promoting", "succeeded"]
    assert read_back(stack, b, "lease") == ({"2": 100.0}, {"2": 100.0})


def _transitions_to(ctx, release_id: str) -> list[tuple[str, str]]:
    return [(e["from_phase"], e["to_phase"]) for e in ctx.store.events(release_id) if e["kind"] == "transition"]


def _stamp(micro: str) -> float:
    return dt.datetime.strptime(micro, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC).timestamp()
