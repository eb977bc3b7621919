"""Everything a single-machine release needs, started for real and stopped in reverse order.

MLflow server, Prometheus, the gateway and the controller each run as their own process,
so a test can SIGKILL the controller and start it again on the same store.
"""
from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

from controller.gateway.ready import announced_port
from controller.ports import free_port, stop_group, wait_http

log = logging.getLogger(__name__)
MODEL = "tiny-chat"
CACHE = Path(os.environ.get("RELCTL_CACHE", Path.home() / ".cache" / "relctl"))


def build_demo_models(cache: Path = CACHE) -> tuple[Path, Path]:
    """v1 = base model; v2 = v1 trained further (a genuinely different checkpoint)."""
    from quantize.tiny_model import cached_tiny_llama
    v1 = cached_tiny_llama(cache / "models", "demo-v1", train_steps=300, seed=1)
    v2 = cached_tiny_llama(cache / "models", "demo-v2", train_steps=150, seed=2, init_from=v1)
    return v1, v2


class DemoStack:
    controller_module = ("-m", "controller.cli", "serve")     # what `relctl serve` runs (benches swap it)

    def __init__(self, workdir: Path, policy: str = "demo", watch: dict[str, str] | None = None):
        self.workdir = Path(workdir)
        self.watch = watch or {MODEL: policy}     # model -> policy name or file
        self.api_token = secrets.token_urlsafe(16)
        self.gateway_token = secrets.token_urlsafe(16)
        self.api_port = free_port()
        self.gateway_port = 0           # picked by the gateway itself at its first start, kept after
        self.mlflow = self.prometheus = self.controller = self.gateway = self.alerts = None
        self._exit = ExitStack()

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> "DemoStack":
        from controller.registry.mlflow_server import MlflowServer
        from controller.report.alerting import AlertingPrometheus, WebhookReceiver, start_alerting

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.mlflow = MlflowServer(self.workdir / "mlflow").start()
        self._exit.callback(self.mlflow.stop)
        # relctl's alert rules evaluated by Prometheus, delivered by a real Alertmanager to a receiver here
        self.alerts = WebhookReceiver().start()
        self._exit.callback(self.alerts.stop)
        alertmanager = start_alerting(self.workdir, self.alerts.url)
        self._exit.callback(alertmanager.stop)
        self.prometheus = AlertingPrometheus(self.workdir / "prometheus", alertmanager=alertmanager.url).start()
        self._exit.callback(self.prometheus.stop)
        self.start_gateway()
        self.prometheus.add_target(f"127.0.0.1:{self.gateway_port}", {"job": "relctl-gateway"})
        self.prometheus.add_target(f"127.0.0.1:{self.api_port}", {"job": "relctl-controller"})
        self._exit.callback(self.stop_model_servers)
        self.start_controller()
        return self

    def stop(self) -> None:
        self.stop_controller()
        self._exit.close()

    def start_gateway(self) -> None:
        cmd = [sys.executable, "-m", "controller.gateway", "--host", "127.0.0.1", "--port", str(self.gateway_port),
               "--admin-token-env", "RELCTL_GATEWAY_TOKEN", "--db-url", self.db_url]
        log = self.workdir / "gateway.log"
        seen = log.stat().st_size if log.exists() else 0
        self.gateway = self._spawn(cmd, log.name)
        self._exit.callback(lambda: stop_group(self.gateway.pid))
        self.gateway_port = self._announced_port(log, seen, self.gateway)
        wait_http(f"{self.gateway_url}/healthz", 60, self.gateway, "gateway")

    def start_controller(self) -> None:
        cmd = [sys.executable, *self.controller_module]
        for model, policy in self.watch.items():
            cmd += ["--watch", f"{model}:{policy}"]
        self.controller = self._spawn(cmd, "controller.log")
        wait_http(f"{self.api_url}/healthz", 120, self.controller, "controller")

    def stop_controller(self) -> None:
        if self.controller is not None:
            stop_group(self.controller.pid)
            self.controller = None

    def kill_controller(self) -> None:
        """SIGKILL, as a crash would: no clean-up code runs."""
        os.kill(self.controller.pid, 9)
        self.controller.wait()
        self.controller = None

    def stop_model_servers(self) -> None:
        from sqlalchemy.orm import sessionmaker

        from controller.pools.local_vllm import LocalVllmPool
        from controller.store.db import make_engine
        from controller.store.deployments import DeploymentStore
        store = DeploymentStore(sessionmaker(make_engine(self.db_url)))
        LocalVllmPool(store, self.workdir).stop_all()

    # -- helpers -------------------------------------------------------------------------
    @staticmethod
    def _announced_port(log: Path, offset: int, proc: subprocess.Popen, timeout: float = 60.0) -> int:
        """The port in the gateway's ready line (written to `log` after `offset`): a port picked here
        beforehand could be taken by another process before the gateway's start-up reaches bind."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(log, "rb") as f:
                f.seek(offset)
                port = announced_port(f.read().decode(errors="replace"))
            if port is not None:
                return port
            if proc.poll() is not None:
                raise RuntimeError(f"gateway exited with code {proc.returncode} before it was ready; see {log}")
            time.sleep(0.2)
        raise TimeoutError(f"gateway not ready after {timeout:.0f} s; see {log}")

    @property
    def db_url(self) -> str:
        return f"sqlite:///{(self.workdir / 'relctl.db').resolve()}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def env(self) -> dict[str, str]:
        return {**os.environ,
                "RELCTL_WORKDIR": str(self.workdir), "RELCTL_DB_URL": self.db_url,
                "RELCTL_MLFLOW_URI": self.mlflow.url, "RELCTL_GATEWAY_ADMIN_URL": self.gateway_url,
                "RELCTL_PROMETHEUS_URL": self.prometheus.url, "RELCTL_API_PORT": str(self.api_port),
                "RELCTL_TICK_SECONDS": "1", "RELCTL_POLL_SECONDS": "2",
                "RELCTL_API_TOKENS": f"admin:{self.api_token}", "RELCTL_GATEWAY_TOKEN": self.gateway_token,
                "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}

    def api(self, method: str, path: str, **kw) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.api_token}"}
        return httpx.request(method, self.api_url + path, headers=headers, timeout=30, **kw)

    def _spawn(self, cmd: list[str], logname: str) -> subprocess.Popen:
        out = open(self.workdir / logname, "ab")
        self._exit.callback(out.close)
        return subprocess.Popen(cmd, env=self.env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
