"""Test helper: one vLLM pod's /metrics as vLLM 0.32 writes it, behind a stand-in chat endpoint.

The HTTP series come from prometheus-fastapi-instrumentator set up exactly as vLLM's API server
does (vllm/entrypoints/serve/instrumentator/metrics.py: same excluded handlers, default metrics,
so `http_requests_total{handler, method, status="2xx"|"4xx"|"5xx"}`); the engine series use
vLLM's names, labels and default buckets (vllm/v1/metrics/loggers.py and buckets.py). The test
says per request how it ends (`outcome`) and how long it took (`e2e`, `ttft`): nothing is
generated, only recorded as vLLM would record it.
"""
from __future__ import annotations

import threading
import time

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_fastapi_instrumentator import Instrumentator

from controller.ports import free_port

# vllm/v1/metrics/buckets.py (0.32): REQUEST_LATENCY_BUCKETS, TIME_TO_FIRST_TOKEN_BUCKETS
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
               480.0, 960.0, 1920.0, 7680.0)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
                40.0, 80.0, 160.0, 640.0, 2560.0)
FINISH_REASONS = ("stop", "length", "abort", "error", "repetition")      # vllm/v1/engine/__init__.py
ADMISSION_REASONS = ("max_num_queued_reqs", "max_num_queued_tokens")    # vllm/v1/metrics/loggers.py
EXCLUDED = ["/metrics", "/health", "/load", "/ping", "/version", "/server_info"]


class VllmPod:
    """`POST /v1/chat/completions` with a body {"outcome": "ok"|"error"|"rejected"|"bad_request", "e2e": s,
    "ttft": s}: answers 200, 500, 503 or 400 and records the series vLLM records for that ending."""

    def __init__(self, served_model_name: str) -> None:
        self.registry = r = CollectorRegistry()
        labels = ("model_name", "engine")
        self._engine = (served_model_name, "0")
        success = Counter("vllm:request_success", "Count of successfully processed requests.",
                          [*labels, "finished_reason"], registry=r)
        self.success = {reason: success.labels(*self._engine, reason) for reason in FINISH_REASONS}
        rejections = Counter("vllm:admission_rejections",
                             "Number of admission attempts rejected by a queue limit, by reason.",
                             ["model_name", "reason"], registry=r)
        self.rejections = {reason: rejections.labels(served_model_name, reason) for reason in ADMISSION_REASONS}
        self.e2e = Histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
                             labels, buckets=E2E_BUCKETS, registry=r).labels(*self._engine)
        self.ttft = Histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
                              labels, buckets=TTFT_BUCKETS, registry=r).labels(*self._engine)
        self.app = self._app()
        self.port = free_port()
        self._server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                                     access_log=False, lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> JSONResponse:
            body = await request.json()
            outcome = body.get("outcome", "ok")
            if outcome == "bad_request":        # vLLM's request validation: 400, before the engine
                return JSONResponse({"error": {"message": "bad request"}}, status_code=400)
            if outcome == "rejected":           # QueueOverflowError: 503, counted as an admission rejection
                self.rejections["max_num_queued_reqs"].inc()
                return JSONResponse({"error": {"message": "The engine is currently busy"}}, status_code=503)
            self.e2e.observe(body.get("e2e", 0.4))
            self.ttft.observe(body.get("ttft", 0.05))
            if outcome == "error":              # FinishReason.ERROR: GenerationError, 500
                self.success["error"].inc()
                return JSONResponse({"error": {"message": "Internal server error"}}, status_code=500)
            self.success["stop"].inc()
            return JSONResponse({"object": "chat.completion", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]})

        Instrumentator(excluded_handlers=EXCLUDED, registry=self.registry).add().instrument(app).expose(app)
        return app

    def start(self) -> "VllmPod":
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the vLLM pod stand-in on port {self.port} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
