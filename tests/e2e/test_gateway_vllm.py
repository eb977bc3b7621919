"""The gateway in front of a REAL vLLM CPU server: streaming, non-streaming, shadow agreement.

One vLLM server (about 80 s to start on this machine) serves both tracks under two
version labels, so a greedy shadow copy must agree exactly with the live answer.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import pytest

from controller.gateway import GatewayConfig, GatewayServer, GatewayState
from controller.reconcile.evaluation_servers import wait_ready
from tests.support.fake_openai import route_doc
from tests.support.pool import make_local_pool

pytest.importorskip("vllm")
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(720)]

MODEL = "tiny-gw"
TOKEN = "e2e-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from quantize.tiny_model import cached_tiny_llama
    cache = Path(os.environ.get("RELCTL_MODEL_CACHE", tmp_path_factory.mktemp("models")))
    return cached_tiny_llama(cache, "tiny-gateway-e2e", train_steps=0)


@pytest.fixture(scope="module")
def vllm_url(model_dir, tmp_path_factory):
    """Started the way the controller starts it: through the local pool."""
    pool = make_local_pool(tmp_path_factory.mktemp("pool"))
    pool.ensure(MODEL, "1", model_dir)
    try:
        yield wait_ready(pool, MODEL, "1", timeout_s=480)
    finally:
        pool.stop_all()


@pytest.fixture(scope="module")
def gateway(vllm_url):
    with GatewayServer(GatewayState(GatewayConfig(admin_token=TOKEN))) as gw:
        doc = route_doc(MODEL, vllm_url, vllm_url, mirror=True, release="e2e")
        assert httpx.put(f"{gw.url}/admin/routes/{MODEL}", json=doc, headers=AUTH).status_code == 200
        yield gw


def _sample(gw, name, **labels):
    return gw.state.metrics.registry.get_sample_value(name, labels) or 0.0


CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "the release went"}],
        "max_tokens": 12, "temperature": 0}


def test_non_streaming_chat_and_completion_through_gateway(gateway, vllm_url):
    direct = httpx.post(f"{vllm_url}/v1/chat/completions", json=CHAT, timeout=60).json()
    via = httpx.post(f"{gateway.url}/v1/chat/completions", json=CHAT, timeout=60)
    assert via.status_code == 200 and via.headers["X-Relctl-Track"] == "stable"
    body = via.json()
    assert body["choices"][0]["message"]["content"] == direct["choices"][0]["message"]["content"]
    assert body["usage"]["completion_tokens"] > 0
    comp = httpx.post(f"{gateway.url}/v1/completions",
                      json={"model": MODEL, "prompt": "once upon", "max_tokens": 8, "temperature": 0}, timeout=60)
    assert comp.status_code == 200 and comp.json()["choices"][0]["text"]
    live = dict(model=MODEL, version="1", track="stable", release="e2e", mode="live")
    assert _sample(gateway, "relctl_tokens_total", **live, kind="completion") >= body["usage"]["completion_tokens"]


def test_streaming_chat_through_gateway(gateway):
    pieces = []
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions",
                      json=CHAT | {"stream": True}, timeout=60) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: {"):
                delta = json.loads(line[6:])["choices"][0].get("delta", {})
                pieces.append(delta.get("content") or "")
    assert len([p for p in pieces if p]) > 1, pieces          # several chunks, not one buffered blob
    full = httpx.post(f"{gateway.url}/v1/chat/completions", json=CHAT, timeout=60).json()
    assert "".join(pieces) == full["choices"][0]["message"]["content"]
    live = dict(model=MODEL, version="1", track="stable", release="e2e", mode="live")
    deadline = time.monotonic() + 20
    while _sample(gateway, "relctl_ttft_seconds_count", **live) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _sample(gateway, "relctl_ttft_seconds_count", **live) >= 1


def test_greedy_shadow_of_the_same_model_agrees_exactly(gateway):
    pairs = dict(model=MODEL, release="e2e")
    deadline = time.monotonic() + 30
    # the earlier tests sent 4 mirrored requests (chat, completion, stream, chat)
    while _sample(gateway, "relctl_shadow_pairs_total", **pairs, outcome="both_ok") < 4:
        assert time.monotonic() < deadline, "shadow pairs never compared"
        time.sleep(0.2)
    # a pair is counted before its agreement: wait (bounded) until the last comparison is counted too
    deadline = time.monotonic() + 10
    while True:
        ok = _sample(gateway, "relctl_shadow_pairs_total", **pairs, outcome="both_ok")
        agreed = _sample(gateway, "relctl_shadow_agreement_total", **pairs, kind="exact")
        if agreed == ok or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert agreed == ok
    assert _sample(gateway, "relctl_shadow_dropped_total", **pairs) == 0
