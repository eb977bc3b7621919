"""Runs a real `mlflow server` (SQLite backend, local artifact store) on 127.0.0.1.

Used by the integration tests and the demo. Needs the full `mlflow` package.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from controller.ports import free_port, stop_group, wait_http

log = logging.getLogger(__name__)


class MlflowServer:
    """`with MlflowServer(workdir) as srv: srv.url` — or start() / stop().

    The webhook encryption key is kept in `workdir`, so a restart on the same workdir
    can still decrypt the stored webhook secrets. `webhook_cache_ttl_s` is how long
    the server caches its webhook list (MLflow's default, 60 s, delays a new webhook).
    """

    def __init__(self, workdir: Path, *, port: int | None = None, workers: int = 1,
                 webhook_cache_ttl_s: int = 60, startup_timeout_s: float = 90.0):
        self.workdir = Path(workdir)
        self.port = port
        self.workers = workers
        self.webhook_cache_ttl_s = webhook_cache_ttl_s
        self.startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen | None = None
        self._log_file = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("MLflow server not started")
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "MlflowServer":
        if self._proc is not None:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self._log_file = open(self.workdir / "mlflow-server.log", "ab")
        started = time.monotonic()
        self._proc = subprocess.Popen(
            self._command(), env=self._env(), cwd=self.workdir,
            stdout=self._log_file, stderr=subprocess.STDOUT,
            start_new_session=True)  # own process group: stop() reaches the workers too
        try:
            self._wait_healthy()
        except Exception:
            self.stop()
            raise
        log.info("mlflow server ready", extra={"url": self.url,
                                               "seconds": round(time.monotonic() - started, 1)})
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM to the whole process group, SIGKILL after `timeout_s`."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_group(proc.pid, timeout_s)
            proc.wait(timeout_s)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> "MlflowServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _command(self) -> list[str]:
        mlflow_cli = Path(sys.executable).with_name("mlflow")
        return [str(mlflow_cli), "server",
                "--backend-store-uri", f"sqlite:///{self.workdir / 'mlflow.db'}",
                "--artifacts-destination", str(self.workdir / "artifacts"),
                "--host", "127.0.0.1", "--port", str(self.port),
                "--workers", str(self.workers)]

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
            "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",  # receivers run on 127.0.0.1
            "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": self._encryption_key(),
            "MLFLOW_WEBHOOK_CACHE_TTL": str(self.webhook_cache_ttl_s),
            # The job runner (GenAI evaluation jobs) adds 7 worker processes that the
            # registry does not need; telemetry would try to reach the internet.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_DISABLE_TELEMETRY": "true",
        })
        return env

    def _encryption_key(self) -> str:
        key_file = self.workdir / "webhook-encryption.key"
        if not key_file.exists():
            from cryptography.fernet import Fernet  # comes with the mlflow server
            key_file.write_bytes(Fernet.generate_key())
            key_file.chmod(0o600)
        return key_file.read_text().strip()

    def _wait_healthy(self) -> None:
        wait_http(f"{self.url}/health", self.startup_timeout_s, self._proc, "mlflow server",
                  self.workdir / "mlflow-server.log")
