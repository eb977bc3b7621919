"""Test helper: HTTP exporters on 127.0.0.1 serving realistic series for the dashboards' queries.

- gateway: the gateway's own `GatewayMetrics`, fed with stable/candidate traffic, errors, latency,
  tokens and shadow pairs as the gateway would record them;
- vllm: vLLM's metric names and labels (`vllm:*`, `model_name`, `engine`; as in vllm 0.32's
  v1/metrics/loggers.py), one exporter per server;
- dcgm: NVIDIA DCGM exporter names and labels for two GPUs;
- any extra collectors (e.g. the controller's release series) on a controller exporter.

Values move every `tick` seconds so that rate() and histogram_quantile() have data.
"""
from __future__ import annotations

import random
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from controller.gateway.metrics import GatewayMetrics
from controller.ports import free_port

VLLM_LABELS = ("model_name", "engine")
DCGM_LABELS = ("gpu", "UUID", "device", "modelName", "Hostname")
SECONDS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0)


class VllmSeries:
    def __init__(self, model_name: str) -> None:
        self.registry = r = CollectorRegistry()
        self.labels = (model_name, "0")
        g, c, h = self._gauge, self._counter, self._histogram
        self.running = g("vllm:num_requests_running", "Number of requests in model execution batches.")
        self.waiting = g("vllm:num_requests_waiting", "Number of requests waiting to be processed.")
        self.kv_cache = g("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.")
        self.prompt = c("vllm:prompt_tokens", "Number of prefill tokens processed.")
        self.generated = c("vllm:generation_tokens", "Number of generation tokens processed.")
        self.preempted = c("vllm:num_preemptions", "Cumulative number of preemption from the engine.")
        self.success = Counter("vllm:request_success", "Count of successfully processed requests.",
                               VLLM_LABELS + ("finished_reason",), registry=r)
        self.ttft = h("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.")
        self.itl = h("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.")
        self.e2e = h("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.")
        self.iteration = h("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.",
                           (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192))

    def _gauge(self, name: str, doc: str):
        return Gauge(name, doc, VLLM_LABELS, registry=self.registry).labels(*self.labels)

    def _counter(self, name: str, doc: str):
        return Counter(name, doc, VLLM_LABELS, registry=self.registry).labels(*self.labels)

    def _histogram(self, name: str, doc: str, buckets=SECONDS):
        return Histogram(name, doc, VLLM_LABELS, buckets=buckets, registry=self.registry).labels(*self.labels)

    def tick(self, rnd: random.Random) -> None:
        n = rnd.randint(2, 8)
        self.running.set(n)
        self.waiting.set(rnd.randint(0, 2))
        self.kv_cache.set(rnd.uniform(0.2, 0.6))
        self.prompt.inc(40 * n)
        self.generated.inc(16 * n)
        self.success.labels(*self.labels, "length").inc(n - 1)
        self.success.labels(*self.labels, "stop").inc(1)
        self.preempted.inc(0)
        for _ in range(n):
            self.ttft.observe(rnd.uniform(0.02, 0.3))
            self.itl.observe(rnd.uniform(0.005, 0.05))
            self.e2e.observe(rnd.uniform(0.3, 2.0))
        self.iteration.observe(rnd.randint(8, 300))


class DcgmSeries:
    FIELDS = ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_GPU_TEMP",
              "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_MEM_COPY_UTIL", "DCGM_FI_PROF_GR_ENGINE_ACTIVE")

    def __init__(self, hostname: str = "gpu-node-1", gpus: int = 2) -> None:
        self.registry = CollectorRegistry()
        self.gauges = {f: Gauge(f, f"DCGM field {f}", DCGM_LABELS, registry=self.registry) for f in self.FIELDS}
        self.gpus = [(str(i), f"GPU-{i:08x}-relctl", f"nvidia{i}", "NVIDIA H200", hostname) for i in range(gpus)]

    def tick(self, rnd: random.Random) -> None:
        for labels in self.gpus:
            used = rnd.uniform(60_000, 120_000)                      # MiB of a 143,771 MiB H200
            values = {"DCGM_FI_DEV_GPU_UTIL": rnd.uniform(40, 95), "DCGM_FI_DEV_FB_USED": used,
                      "DCGM_FI_DEV_FB_FREE": 143_771 - used, "DCGM_FI_DEV_GPU_TEMP": rnd.uniform(40, 70),
                      "DCGM_FI_DEV_POWER_USAGE": rnd.uniform(200, 600),
                      "DCGM_FI_DEV_MEM_COPY_UTIL": rnd.uniform(10, 60),
                      "DCGM_FI_PROF_GR_ENGINE_ACTIVE": rnd.uniform(0.3, 0.9)}
            for field, value in values.items():
                self.gauges[field].labels(*labels).set(value)


class GatewaySeries:
    def __init__(self, model: str, release: str) -> None:
        self.metrics = m = GatewayMetrics()
        self.registry = m.registry
        tracks = (("stable", "1", "live"), ("candidate", "2", "live"), ("candidate", "2", "shadow"))
        self.tracks = {(t, mode): m.track(model, v, t, release, mode) for t, v, mode in tracks}
        self.shadow = m.shadow(model, release)

    def tick(self, rnd: random.Random) -> None:
        for (track, _), t in self.tracks.items():
            n = 8 if track == "stable" else 2
            t.requests.inc(n)
            t.errors["http_5xx"].inc(rnd.random() < 0.3)
            t.errors["validator"].inc(rnd.random() < 0.1)
            for _ in range(n):
                t.duration.observe(rnd.uniform(0.2, 1.5))
                t.ttft.observe(rnd.uniform(0.02, 0.3))
                t.inter_token.observe(rnd.uniform(0.005, 0.05))
            t.prompt_tokens.inc(40 * n)
            t.completion_tokens.inc(16 * n)
        self.shadow.pairs["both_ok"].inc(2)
        self.shadow.pairs[rnd.choice(("only_candidate_failed", "only_stable_failed"))].inc(rnd.random() < 0.3)
        self.shadow.agreement["exact"].inc(1)
        self.shadow.agreement["normalized"].inc(2)
        self.shadow.dropped.inc(rnd.random() < 0.1)


class SeriesExporters:
    """Starts one HTTP exporter per source; `targets` maps job name -> list of host:port."""

    def __init__(self, model: str, release: str, controller_collectors=(), tick: float = 0.25) -> None:
        self.sources = {"relctl-gateway": [GatewaySeries(model, release)],
                        "vllm": [VllmSeries(model), VllmSeries(model)], "dcgm": [DcgmSeries()]}
        controller = CollectorRegistry()
        for c in controller_collectors:
            controller.register(c)
        self._controller = controller
        self._tick, self._stop = tick, threading.Event()
        self._servers, self.targets = [], {}

    def start(self) -> "SeriesExporters":
        rnd = random.Random(15)
        registries = [(job, s.registry, s) for job, sources in self.sources.items() for s in sources]
        for job, registry, _ in registries + [("relctl-controller", self._controller, None)]:
            port = free_port()
            server, _ = start_http_server(port, addr="127.0.0.1", registry=registry)
            self._servers.append(server)
            self.targets.setdefault(job, []).append(f"127.0.0.1:{port}")
        sources = [s for _, _, s in registries]
        threading.Thread(target=self._run, args=(sources, rnd), daemon=True).start()
        return self

    def _run(self, sources, rnd: random.Random) -> None:
        while not self._stop.is_set():
            for s in sources:
                s.tick(rnd)
            self._stop.wait(self._tick)

    def stop(self) -> None:
        self._stop.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()
