"""The gateway over HTTP against fake upstreams: proxying, split, shadow, faults, audit, auth."""
from __future__ import annotations

import concurrent.futures
import hashlib
import json
import socket
import time

import httpx
import pytest
from sqlalchemy import create_engine, select

from controller.gateway import GatewayConfig, GatewayServer, GatewayState
from controller.store.models import AuditRow, Base
from tests.support.fake_openai import FakeOpenAI, route_doc

TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def fakes():
    stable, candidate = FakeOpenAI("stable says hi").start(), FakeOpenAI("candidate says hi").start()
    yield stable, candidate
    stable.stop()
    candidate.stop()


@pytest.fixture
def gw(fakes):
    server = GatewayServer(GatewayState(GatewayConfig(admin_token=TOKEN, shadow_queue_size=4,
                                                      shadow_workers=2))).start()
    yield server
    server.stop()


def put_route(gw, fakes, **kw):
    doc = route_doc("tiny", fakes[0].url, fakes[1].url, **kw)
    r = httpx.put(f"{gw.url}/admin/routes/tiny", json=doc, headers=AUTH)
    assert r.status_code == 200, r.text


def sample(gw, name, **labels):
    return gw.state.metrics.registry.get_sample_value(name, labels) or 0.0


def live(track, version, **extra):
    return dict(model="tiny", version=version, track=track, release="rel-1", mode="live", **extra)


def wait_for(cond, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_chat_and_completion_are_proxied_and_counted(gw, fakes):
    put_route(gw, fakes)
    r = httpx.post(f"{gw.url}/v1/chat/completions", json=CHAT)
    assert r.status_code == 200 and r.headers["X-Relctl-Track"] == "stable"
    assert r.json()["choices"][0]["message"]["content"] == "stable says hi"
    r = httpx.post(f"{gw.url}/v1/completions", json={"model": "tiny", "prompt": "hi"})
    assert r.json()["choices"][0]["text"] == "stable says hi"
    assert sample(gw, "relctl_requests_total", **live("stable", "1")) == 2
    assert sample(gw, "relctl_tokens_total", **live("stable", "1", kind="completion")) == 6
    assert sample(gw, "relctl_request_duration_seconds_count", **live("stable", "1")) == 2
    models = httpx.get(f"{gw.url}/v1/models").json()
    assert [m["id"] for m in models["data"]] == ["tiny"]


def test_streaming_passes_chunks_through_and_measures_ttft(gw, fakes):
    fakes[0].chunk_delay_s = 0.05
    put_route(gw, fakes)
    arrivals, text = [], ""
    with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=CHAT | {"stream": True}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: {"):
                arrivals.append(time.monotonic())
                text += json.loads(line[6:])["choices"][0]["delta"]["content"]
    assert text == "stable says hi"
    assert arrivals[-1] - arrivals[0] > 0.08      # chunks arrived spread out, not buffered at the end
    # the gateway records after the last byte went out: give its handler a moment
    assert wait_for(lambda: sample(gw, "relctl_requests_total", **live("stable", "1")) == 1)
    assert sample(gw, "relctl_ttft_seconds_count", **live("stable", "1")) == 1
    assert sample(gw, "relctl_inter_token_seconds_count", **live("stable", "1")) == 2


def test_split_ratio_within_bounds_and_sessions_stick(gw, fakes):
    put_route(gw, fakes, candidate_weight=30)
    n = 300
    with httpx.Client() as c:
        tracks = [c.post(f"{gw.url}/v1/chat/completions", json=CHAT).headers["X-Relctl-Track"] for _ in range(n)]
        share = tracks.count("candidate") / n
        assert abs(share - 0.3) < 4 * (0.3 * 0.7 / n) ** 0.5
        for user in ("alice", "bob", "carol"):
            seen = {c.post(f"{gw.url}/v1/chat/completions", json=CHAT,
                           headers={"X-Relctl-Session": user}).headers["X-Relctl-Track"] for _ in range(10)}
            assert len(seen) == 1
            by_user = {c.post(f"{gw.url}/v1/chat/completions", json=CHAT | {"user": user})
                       .headers["X-Relctl-Track"] for _ in range(10)}
            assert by_user == seen
    assert fakes[1].calls == tracks.count("candidate")


def test_weights_change_mid_flight_without_dropping_requests(gw, fakes):
    fakes[0].delay_s = 0.5
    put_route(gw, fakes, candidate_weight=0)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        inflight = [pool.submit(httpx.post, f"{gw.url}/v1/chat/completions", json=CHAT, timeout=10)
                    for _ in range(8)]
        assert wait_for(lambda: fakes[0].calls == 8)
        put_route(gw, fakes, candidate_weight=100)
        after = httpx.post(f"{gw.url}/v1/chat/completions", json=CHAT)
        results = [f.result() for f in inflight]
    assert all(r.status_code == 200 and r.headers["X-Relctl-Track"] == "stable" for r in results)
    assert after.headers["X-Relctl-Track"] == "candidate"


def test_malformed_requests_get_400_and_no_upstream_call(gw, fakes):
    put_route(gw, fakes)
    cases = [b"{not json", b"[1,2]", json.dumps({"messages": []}).encode(),
             json.dumps({"model": "tiny"}).encode(), json.dumps(CHAT | {"stream": "yes"}).encode(), b""]
    for raw in cases:
        r = httpx.post(f"{gw.url}/v1/chat/completions", content=raw)
        assert r.status_code == 400 and r.json()["error"]["message"], raw
    r = httpx.post(f"{gw.url}/v1/chat/completions", json=CHAT | {"model": "nope"})
    assert r.status_code == 404 and "nope" in r.json()["error"]["message"]
    assert fakes[0].calls == fakes[1].calls == 0


def test_shadow_pairs_are_compared_and_counted(gw, fakes):
    put_route(gw, fakes, mirror=True)
    for _ in range(3):
        assert httpx.post(f"{gw.url}/v1/chat/completions", json=CHAT).headers["X-Relctl-Track"] == "stable"
    pairs = dict(model="tiny", release="rel-1")
    assert wait_for(lambda: sample(gw, "relctl_shadow_pairs_total", **pairs, outcome="both_ok") == 3)
    assert sample(gw, "relctl_shadow_agreement_total", **pairs, kind="exact") == 0   # different replies
    shadow = dict(model="tiny", version="2", track="candidate", release="rel-1", mode="shadow")
    assert sample(gw, "relctl_requests_total", **shadow) == 3
    assert fakes[1].calls == 3


def test_slow_or_failing_shadow_leaves_users_unaffected(gw, fakes):
    fakes[1].delay_s, fakes[1].status = 1.0, 500
    put_route(gw, fakes, mirror=True)
    elapsed, codes = [], []
    with httpx.Client() as c:
        for _ in range(20):
            started = time.monotonic()
            codes.append(c.post(f"{gw.url}/v1/chat/completions", json=CHAT).status_code)
            elapsed.append(time.monotonic() - started)
    assert codes == [200] * 20
    assert max(elapsed) < 0.9          # a shadow that blocked would add its full 1 s here
    pairs = dict(model="tiny", release="rel-1")
    shadow = dict(model="tiny", version="2", track="candidate", release="rel-1", mode="shadow")
    dropped = sample(gw, "relctl_shadow_dropped_total", **pairs)
    assert dropped >= 1                # queue 4, 2 workers busy 1 s each: the rest is dropped, not queued
    # every copy is either dropped or sent and compared as a failed candidate
    assert wait_for(lambda: dropped + sample(gw, "relctl_shadow_pairs_total", **pairs,
                                             outcome="only_candidate_failed") == 20, timeout=15)
    assert sample(gw, "relctl_errors_total", **shadow, error_class="http_5xx") == 20 - dropped
    assert sample(gw, "relctl_errors_total", **live("stable", "1", error_class="http_5xx")) == 0


def test_fault_injection_per_track(gw, fakes):
    put_route(gw, fakes, candidate_weight=100)
    assert httpx.put(f"{gw.url}/admin/faults/tiny/candidate", json={"error_rate": 1.0}, headers=AUTH).status_code == 200
    r = httpx.post(f"{gw.url}/v1/chat/completions", json=CHAT)
    assert r.status_code == 503 and fakes[1].calls == 0
    assert sample(gw, "relctl_errors_total", **live("candidate", "2", error_class="http_5xx")) == 1
    httpx.put(f"{gw.url}/admin/faults/tiny/candidate", json={"latency_ms": 300, "truncate": True}, headers=AUTH)
    started = time.monotonic()
    r = httpx.post(f"{gw.url}/v1/chat/completions", json=CHAT)
    assert time.monotonic() - started >= 0.3
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == ""
    assert sample(gw, "relctl_errors_total", **live("candidate", "2", error_class="empty_output")) == 1
    httpx.put(f"{gw.url}/admin/faults/tiny/candidate", json={}, headers=AUTH)
    assert httpx.post(f"{gw.url}/v1/chat/completions", json=CHAT).json()["choices"][0]["message"]["content"]


def test_validators_count_failures_as_error_class(gw, fakes):
    put_route(gw, fakes, candidate_weight=50, validators=[{"type": "regex", "pattern": "^stable"}])
    with httpx.Client() as c:
        for i in range(40):
            c.post(f"{gw.url}/v1/chat/completions", json=CHAT, headers={"X-Relctl-Session": f"s{i}"})
    bad = sample(gw, "relctl_errors_total", **live("candidate", "2", error_class="validator"))
    assert bad == fakes[1].calls > 0
    assert sample(gw, "relctl_errors_total", **live("stable", "1", error_class="validator")) == 0


def test_zero_series_exist_as_soon_as_a_route_is_applied(gw, fakes):
    put_route(gw, fakes, mirror=True)
    text = httpx.get(f"{gw.url}/metrics").text
    for line in ('relctl_errors_total{error_class="http_5xx",mode="live",model="tiny",release="rel-1",'
                 'track="candidate",version="2"} 0.0',
                 'relctl_shadow_pairs_total{model="tiny",outcome="only_candidate_failed",release="rel-1"} 0.0',
                 'relctl_shadow_dropped_total{model="tiny",release="rel-1"} 0.0'):
        assert line in text


def test_admin_api_requires_the_token(gw, fakes):
    doc = route_doc("tiny", fakes[0].url, fakes[1].url)
    assert httpx.put(f"{gw.url}/admin/routes/tiny", json=doc).status_code == 401
    assert httpx.put(f"{gw.url}/admin/routes/tiny", json=doc,
                     headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(f"{gw.url}/admin/routes/tiny", headers=AUTH).status_code == 404
    assert "tiny" not in gw.state.routes
    bad = httpx.put(f"{gw.url}/admin/routes/tiny", json=doc | {"weights": {"stable": 1}}, headers=AUTH)
    assert bad.status_code == 400 and "sum to 100" in bad.json()["error"]["message"]
    mismatch = httpx.put(f"{gw.url}/admin/routes/other", json=doc, headers=AUTH)
    assert mismatch.status_code == 400
    bad_validator = httpx.put(f"{gw.url}/admin/routes/tiny", headers=AUTH,
                              json=doc | {"validators": [{"type": "regex", "pattern": "("}]})
    assert bad_validator.status_code == 400 and "bad pattern" in bad_validator.json()["error"]["message"]
    assert httpx.put(f"{gw.url}/admin/faults/tiny/candidate", json={"error_rate": -1},
                     headers=AUTH).status_code == 400
    assert httpx.get(f"{gw.url}/healthz").status_code == 200


def test_validator_failure_logs_are_redacted(gw, fakes, caplog):
    fakes[0].reply = '{"email": "jane.doe@example.com", "account": 1234567890123}'
    schema = {"type": "object", "properties": {"account": {"type": "string"}}}
    put_route(gw, fakes, validators=[{"type": "json_schema", "schema": schema, "name": "acct"}])
    with caplog.at_level("INFO", logger="controller.gateway.exchange"):
        httpx.post(f"{gw.url}/v1/chat/completions", json=CHAT)
    reasons = [r.reason for r in caplog.records if r.getMessage() == "validator failed"]
    assert reasons and "[NUMBER]" in reasons[0] and "1234567890123" not in reasons[0]
    assert sample(gw, "relctl_errors_total", **live("stable", "1", error_class="validator")) == 1


def test_audit_hashes_reach_the_store(fakes, tmp_path):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    state = GatewayState(GatewayConfig(admin_token=TOKEN, db_url=url, audit_interval_s=0.1))
    with GatewayServer(state) as gw:
        put_route(gw, fakes, mirror=True)
        raw = json.dumps(CHAT).encode()
        r = httpx.post(f"{gw.url}/v1/chat/completions", content=raw)
        assert wait_for(lambda: len(gw.state.audit.recent) == 2)
    with engine.connect() as conn:
        rows = conn.execute(select(AuditRow).order_by(AuditRow.mode)).all()
    assert [(row.mode, row.track, row.version) for row in rows] == [("live", "stable", "1"),
                                                                  ("shadow", "candidate", "2")]
    assert rows[0].request_sha256 == hashlib.sha256(raw).hexdigest() == rows[1].request_sha256
    assert rows[0].response_sha256 == hashlib.sha256(r.content).hexdigest()
    assert rows[0].release_id == "rel-1" and rows[0].status == 200


def test_upstream_timeout_and_refused_connection_are_classified(fakes):
    fakes[0].delay_s = 1.0
    state = GatewayState(GatewayConfig(admin_token=TOKEN, upstream_timeout_s=0.3))
    with GatewayServer(state) as gw:
        put_route(gw, fakes)
        r = httpx.post(f"{gw.url}/v1/chat/completions", json=CHAT)
        assert r.status_code == 504 and "timed out" in r.json()["error"]["message"]
        assert sample(gw, "relctl_errors_total", **live("stable", "1", error_class="timeout")) == 1
        with socket.socket() as s:          # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            closed = f"http://127.0.0.1:{s.getsockname()[1]}"
        doc = route_doc("tiny", closed, fakes[1].url)
        httpx.put(f"{gw.url}/admin/routes/tiny", json=doc, headers=AUTH)
        assert httpx.post(f"{gw.url}/v1/chat/completions", json=CHAT).status_code == 502
        assert sample(gw, "relctl_errors_total", **live("stable", "1", error_class="http_5xx")) == 1


def test_a_connection_the_upstream_closed_without_answering_is_retried_once_on_a_fresh_one(fakes):
    """What an idle pooled connection looks like once vLLM's keep-alive timeout closed it."""
    import threading
    body = json.dumps({"object": "chat.completion", "choices": [{"index": 0, "message": {
        "role": "assistant", "content": "hi"}}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}).encode()
    listener = socket.create_server(("127.0.0.1", 0))
    connections = []

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            connections.append(conn)
            with conn:
                conn.recv(65536)                     # the request arrives ...
                if len(connections) == 1:
                    continue                         # ... and the first connection closes unanswered
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    threading.Thread(target=serve, daemon=True).start()
    upstream = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        with GatewayServer(GatewayState(GatewayConfig(admin_token=TOKEN))) as gw:
            httpx.put(f"{gw.url}/admin/routes/tiny", json=route_doc("tiny", upstream, fakes[1].url), headers=AUTH)
            r = httpx.post(f"{gw.url}/v1/chat/completions", json=CHAT)
            assert r.status_code == 200 and len(connections) == 2, (r.status_code, r.text)
            assert sample(gw, "relctl_errors_total", **live("stable", "1", error_class="http_5xx")) == 0
    finally:
        listener.close()


def test_an_idle_upstream_connection_is_dropped_before_vllms_keep_alive_ends(gw, fakes):
    """vLLM's server closes a connection idle for 5 s; a request the gateway sent on one just then
    failed with a reset (a 502 served). The gateway drops idle connections sooner, reuses busy ones."""
    from controller.gateway.server import UPSTREAM_IDLE_SECONDS

    put_route(gw, fakes)
    for _ in range(2):
        assert httpx.post(f"{gw.url}/v1/chat/completions", json=CHAT).status_code == 200
    time.sleep(UPSTREAM_IDLE_SECONDS + 0.5)           # idle longer than the gateway keeps it, under 5 s
    assert httpx.post(f"{gw.url}/v1/chat/completions", json=CHAT).status_code == 200
    ports = fakes[0].client_ports
    assert UPSTREAM_IDLE_SECONDS + 0.5 < 5.0
    assert ports[0] == ports[1] and ports[2] != ports[1], ports
