"""Run a real Prometheus on 127.0.0.1 for tests and the demo (Debian package `prometheus`).

Targets are file_sd JSON files, so `add_target` works while the server runs (picked up
within a few seconds). Every run has its own data directory and a free port.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from controller.ports import free_port, stop_process, wait_http

log = logging.getLogger(__name__)


class PrometheusNotFound(RuntimeError):
    pass


class PrometheusServer:
    def __init__(self, workdir: str | Path, scrape_interval_seconds: float = 1.0, binary: str = "prometheus") -> None:
        self.workdir = Path(workdir)
        self.scrape_interval = scrape_interval_seconds
        self.binary = binary
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("Prometheus is not started")
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_timeout: float = 30.0) -> "PrometheusServer":
        exe = shutil.which(self.binary)
        if exe is None:
            raise PrometheusNotFound(f"{self.binary!r} not on PATH; install it with: apt-get install -y prometheus")
        (self.workdir / "targets").mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        self.port = free_port()
        args = [exe, f"--config.file={config}", f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle"]
        logfile = open(self.workdir / "prometheus.log", "ab")
        self._proc = subprocess.Popen(args, stdout=logfile, stderr=subprocess.STDOUT)
        logfile.close()
        self._wait_ready(ready_timeout)
        log.info("prometheus.started", extra={"url": self.url, "pid": self._proc.pid})
        return self

    def add_target(self, hostport: str, labels: dict[str, str] | None = None, name: str | None = None) -> None:
        """Scrape http://hostport/metrics; written atomically so Prometheus never reads half a file."""
        if "/" in hostport or ":" not in hostport:
            raise ValueError(f"target must be host:port, got {hostport!r}")
        path = self.workdir / "targets" / f"{name or hostport.replace(':', '_')}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([{"targets": [hostport], "labels": labels or {}}]))
        os.replace(tmp, path)

    def remove_target(self, name: str) -> None:
        (self.workdir / "targets" / f"{name.replace(':', '_')}.json").unlink(missing_ok=True)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; raises on HTTP or API errors (tests use it to wait for data)."""
        qs = urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{qs}", timeout=5) as resp:
            body = json.load(resp)
        if body.get("status") != "success":
            raise RuntimeError(f"query {promql!r} failed: {body}")
        return cast(list[dict[str, Any]], body["data"]["result"])

    def wait_for(self, promql: str, predicate: Callable[[list[dict[str, Any]]], object] = bool,
                 timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if predicate(result):
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"{promql!r} did not satisfy the condition within {timeout} s: {result}")
            time.sleep(0.5)

    def stop(self) -> None:
        if self._proc is None:
            return
        stop_process(self._proc)
        log.info("prometheus.stopped", extra={"pid": self._proc.pid})
        self._proc = None

    def __enter__(self) -> "PrometheusServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _write_config(self) -> Path:
        interval = f"{int(self.scrape_interval * 1000)}ms"
        config = self.workdir / "prometheus.yml"
        # JSON is valid YAML: no YAML writer needed.
        config.write_text(json.dumps({
            "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
            "scrape_configs": [{"job_name": "relctl", "file_sd_configs": [
                {"files": [str(self.workdir / "targets" / "*.json")], "refresh_interval": "1s"}]}],
        }, indent=2))
        return config

    def _wait_ready(self, timeout: float) -> None:
        try:
            wait_http(f"{self.url}/-/ready", timeout, self._proc, "prometheus", self.workdir / "prometheus.log")
        except (RuntimeError, TimeoutError):
            self.stop()
            raise


