"""The gateway as its own process, scraped by a real Prometheus, auditing into a real SQLite store.

The upstream is nginx answering a static chat completion (a real HTTP server; what it
answers does not matter here). Real vLLM behind the gateway is in tests/e2e.
"""
from __future__ import annotations

import json
import shutil
import subprocess

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from controller.ports import free_port
from controller.store.models import AuditRow, Base
from controller.traffic.base import Backend, Fault, RouteSpec
from controller.traffic.embedded import EmbeddedGatewayRouter
from tests.support.gateway_process import GatewayProcess
from tests.support.prometheus import PrometheusServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180),
              pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx missing: apt-get install -y nginx")]

TOKEN = "integration-token"
REPLY = json.dumps({"object": "chat.completion", "choices": [{"index": 0, "message": {
    "role": "assistant", "content": "static answer"}}], "usage": {"prompt_tokens": 4, "completion_tokens": 2}})


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    d, port = tmp_path_factory.mktemp("nginx"), free_port()
    conf = d / "nginx.conf"
    conf.write_text(f"""daemon off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{ access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{ listen 127.0.0.1:{port};
    location / {{ default_type application/json; return 200 '{REPLY}'; }} }} }}
""")
    proc = subprocess.Popen(["nginx", "-p", str(d), "-c", str(conf)])
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: httpx.post(url + "/v1/chat/completions", json={}).status_code == 200)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _wait(cond, timeout: float = 15.0) -> None:
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError("condition not met")


def test_missing_admin_token_is_a_clear_startup_error(tmp_path):
    gw = GatewayProcess(tmp_path, None, "--db-url", f"sqlite:///{tmp_path}/a.db")
    with pytest.raises(AssertionError, match="exited with code 2"):
        gw.start()
    assert "RELCTL_GATEWAY_TOKEN" in gw.log.read_text()


def test_gateway_process_metrics_in_prometheus_and_audit_in_store(upstream, tmp_path):
    db_url = f"sqlite:///{tmp_path}/store.db"
    engine = create_engine(db_url)
    Base.metadata.create_all(engine)
    gw = GatewayProcess(tmp_path, TOKEN, "--db-url", db_url).start()
    prom = PrometheusServer(tmp_path / "prom").start()
    try:
        base = gw.url
        prom.add_target(f"127.0.0.1:{gw.port}", {"job": "relctl-gateway"})
        router = EmbeddedGatewayRouter(base, TOKEN)
        router.apply(RouteSpec(model="tiny", release_id="rel-int", weights={"stable": 50, "candidate": 50},
                               backends=(Backend("stable", upstream, "1"), Backend("candidate", upstream, "2"))))
        router.set_fault("tiny", "candidate", Fault(error_rate=1.0))
        body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}
        with httpx.Client() as c:
            codes = [c.post(f"{base}/v1/chat/completions", json=body).status_code for _ in range(40)]
        failed = codes.count(503)
        assert 0 < failed < 40 and codes.count(200) == 40 - failed
        errs = 'sum(relctl_errors_total{job="relctl-gateway",track="candidate",error_class="http_5xx"})'
        prom.wait_for(errs, lambda r: r and float(r[0]["value"][1]) == failed)
        stable_errs = prom.query('relctl_errors_total{track="stable",error_class="http_5xx",mode="live"}')
        assert [float(s["value"][1]) for s in stable_errs] == [0.0]      # pre-created zero series
        reqs = prom.query('sum by (track) (relctl_requests_total{release="rel-int"})')
        assert {s["metric"]["track"]: float(s["value"][1]) for s in reqs} == {"stable": 40 - failed,
                                                                           "candidate": failed}
        assert gw.stop() == 0                   # SIGTERM: a clean exit
    finally:
        gw.stop()
        prom.stop()
    with engine.connect() as conn:             # the last batch is flushed on shutdown
        counts = dict(conn.execute(select(AuditRow.track, func.count()).group_by(AuditRow.track)).all())
    assert counts == {"stable": 40 - failed, "candidate": failed}
