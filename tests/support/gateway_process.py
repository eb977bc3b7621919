"""Test helper: relctl's gateway as its own process (`python -m controller.gateway`).

It is started on port 0 and reports the port it bound in its ready line: a port picked
beforehand by the test could be taken by another process (a vLLM server's ZMQ sockets,
Prometheus) before the gateway's Python start-up reaches `bind`. A restart reuses the port.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from controller.gateway.ready import announced_port
from controller.ports import stop_process

ROOT = Path(__file__).resolve().parents[2]


class GatewayProcess:
    def __init__(self, workdir: Path, token: str | None, *args: str):
        self.workdir, self.token, self.args = Path(workdir), token, args
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / "gateway.stderr.log"

    def start(self) -> "GatewayProcess":
        env = {k: v for k, v in os.environ.items() if k != "RELCTL_GATEWAY_TOKEN"}
        env["PYTHONPATH"] = str(ROOT)
        if self.token:
            env["RELCTL_GATEWAY_TOKEN"] = self.token
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "controller.gateway", "--host", "127.0.0.1",
                                          "--port", str(self.port), *self.args],
                                         stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        port = announced_port(self.proc.stdout.readline())  # printed only once the socket listens
        if port is None:
            self.proc.wait(10)
            raise AssertionError(f"gateway exited with code {self.proc.returncode} before it was ready; "
                                 f"stderr: {self.log.read_text()[-3000:]}")
        self.port = port
        return self

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is not None and self.proc.poll() is None:
            stop_process(self.proc)
        return self.proc.returncode if self.proc else None
