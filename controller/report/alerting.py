"""Alert delivery for tests and the demo: a real Alertmanager (Debian package prometheus-alertmanager), a Prometheus
that evaluates relctl's rules and alerts to it, and a webhook receiver on 127.0.0.1 (aiohttp).

The Alertmanager runs dashboards/alertmanager.yml with only the receiver's URL (and, for tests,
the grouping waits) replaced; clustering is off so it binds nothing but its loopback port.
Shipped in the package (like PrometheusServer) so that the demo can start it; the tests import it
through tests/support/alertmanager.py.
"""
from __future__ import annotations

import asyncio
import json
import logging
import shutil
import subprocess
import threading
import time
from pathlib import Path

import yaml
from aiohttp import web

from controller.analysis.prometheus_server import PrometheusServer
from controller.ports import free_port, stop_process, wait_http

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2] / "dashboards"      # the repository's dashboards/
CONFIG = ROOT / "alertmanager.yml"
RULES = sorted((ROOT / "rules").glob("*.yml"))


class AlertmanagerNotFound(RuntimeError):
    pass


def alertmanager_config(webhook_url: str, group_wait: str | None = None, group_interval: str | None = None) -> dict:
    """The shipped config, every webhook pointed at `webhook_url` (faster grouping for tests if given)."""
    cfg = yaml.safe_load(CONFIG.read_text())
    for receiver in cfg["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook_url
    for key, value in (("group_wait", group_wait), ("group_interval", group_interval)):
        if value:
            cfg["route"][key] = value
    return cfg


class AlertmanagerServer:
    def __init__(self, workdir: str | Path, config: dict, binary: str = "prometheus-alertmanager") -> None:
        self.workdir, self.config, self.binary = Path(workdir), config, binary
        self.port: int | None = None
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_timeout: float = 30.0) -> "AlertmanagerServer":
        exe = shutil.which(self.binary) or shutil.which("alertmanager")
        if exe is None:
            raise AlertmanagerNotFound(f"{self.binary!r} not on PATH; install it with: "
                                       "apt-get install -y prometheus-alertmanager")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "alertmanager.yml"
        config.write_text(yaml.safe_dump(self.config))
        self.port = free_port()
        args = [exe, f"--config.file={config}", f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="]
        with open(self.workdir / "alertmanager.log", "ab") as logfile:
            self._proc = subprocess.Popen(args, stdout=logfile, stderr=subprocess.STDOUT)
        try:
            wait_http(f"{self.url}/-/ready", ready_timeout, self._proc, "alertmanager",
                      self.workdir / "alertmanager.log")
        except (RuntimeError, TimeoutError):
            self.stop()
            raise
        log.info("alertmanager.started", extra={"url": self.url, "pid": self._proc.pid})
        return self

    def stop(self) -> None:
        if self._proc is None:
            return
        stop_process(self._proc)
        self._proc = None

    def __enter__(self) -> "AlertmanagerServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class AlertingPrometheus(PrometheusServer):
    """A PrometheusServer that also loads rule files and sends alerts to an Alertmanager."""

    def __init__(self, workdir: str | Path, alertmanager: str, rule_files=RULES, **kwargs) -> None:
        super().__init__(workdir, **kwargs)
        self.alertmanager, self.rule_files = alertmanager, [str(p) for p in rule_files]

    def _write_config(self) -> Path:
        path = super()._write_config()
        cfg = json.loads(path.read_text())
        host = self.alertmanager.split("://")[-1].rstrip("/")
        cfg["rule_files"] = self.rule_files
        cfg["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [host]}]}]}
        path.write_text(json.dumps(cfg, indent=2))
        return path


class WebhookReceiver:
    """Collects Alertmanager's webhook notifications (JSON bodies) on 127.0.0.1, in a thread of its own."""

    def __init__(self, path: str = "/alerts") -> None:
        self.path, self.port = path, free_port()
        self.received: list[dict] = []
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    async def _handle(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        return web.Response(text="ok")

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def start(self) -> "WebhookReceiver":
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return self

    def wait_for(self, predicate, timeout: float = 60.0) -> dict:
        """The first notification for which predicate(body) is true."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for body in list(self.received):
                if predicate(body):
                    return body
            time.sleep(0.2)
        raise TimeoutError(f"no matching notification within {timeout:.0f} s; got {self.received}")

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)


def start_alerting(workdir: str | Path, webhook_url: str, fast: bool = True) -> AlertmanagerServer:
    """For the demo: an Alertmanager delivering to `webhook_url`; pass its url to AlertingPrometheus."""
    waits = {"group_wait": "1s", "group_interval": "5s"} if fast else {}
    return AlertmanagerServer(Path(workdir) / "alertmanager", alertmanager_config(webhook_url, **waits)).start()
