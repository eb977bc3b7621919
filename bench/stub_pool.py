"""A pool whose "model servers" are nginx processes answering a fixed chat completion (for bench/soak.py).

On two CPU cores a real vLLM server answers tens of requests a second; the gateway's capacity
is thousands, so a soak at that capacity needs upstreams as fast as bench/gateway.py's
(nginx returning static JSON). `StubPool` is the local vLLM pool with only the server command
changed: starts, adoption, health (`/health`), stops and the deployment table are the real
pool's. A checkpoint may carry `relctl-stub.json` ({"error_rate": 0.3}): that share of its
answers is a 500, so a faulty version is a property of what was registered.

The controller selects it by name (`RELCTL_POOL=stub-openai`); the name is registered in this
process only, by running the controller through this module:

    python -m bench.stub_pool serve --watch MODEL:POLICY      # = relctl serve, plus the stub pool
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from bench import gateway as bench_gateway
from controller import backends
from controller.pools.local_vllm import LocalVllmPool
from controller.store.deployments import DeploymentStore

NAME = "stub-openai"
MARKER = "relctl-stub.json"


def reply(model: str) -> str:
    return json.dumps({
        "id": "stub", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "ok, stub reply"}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}})


def nginx_conf(folder: Path, model: str, port: int, error_rate: float) -> Path:
    """One single-process nginx: /health, and a fixed answer (a 500 for `error_rate` of requests)."""
    split = fail = ""
    if error_rate > 0:
        split = f'  split_clients "${{request_id}}" $stub_fail {{ {error_rate * 100:g}% 1; * 0; }}\n'
        fail = "if ($stub_fail) { return 500 '{\"error\": {\"message\": \"stub failure\"}}'; } "
    http_body = f"""{split}  server {{
    listen 127.0.0.1:{port};
    keepalive_requests 1000000;
    location = /health {{ return 200 ''; }}
    location / {{ default_type application/json; {fail}return 200 '{reply(model)}'; }}
  }}"""
    return bench_gateway.nginx_conf(folder.parent, folder.name, http_body, head="master_process off;\n")


def error_rate_of(artifact_dir: Path) -> float:
    marker = Path(artifact_dir) / MARKER
    return float(json.loads(marker.read_text()).get("error_rate", 0.0)) if marker.is_file() else 0.0


class StubPool(LocalVllmPool):
    def can_serve(self, quantization: str | None) -> tuple[bool, str]:
        if quantization in (None, "", "none"):
            return True, "full precision (nginx stub)"
        return False, f"pool {self.name} serves only full-precision checkpoints"

    def _server_command(self, model: str, artifact_dir: Path, port: int, core: int) -> tuple[list[str], dict]:
        folder = self._logs.parent / "stub-servers" / str(port)
        conf = nginx_conf(folder, model, port, error_rate_of(artifact_dir))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        return [nginx, "-e", str(folder / "error.log"), "-p", str(folder), "-c", str(conf)], dict(os.environ)


def build(settings, sessions) -> StubPool:
    """Backend factory (controller.backends)."""
    return StubPool(DeploymentStore(sessions), settings.workdir, name="stub")


def register() -> None:
    backends.BACKENDS["pool"][NAME] = "bench.stub_pool:build"


if __name__ == "__main__":
    register()
    from controller.cli import main
    sys.exit(main(sys.argv[1:]))
