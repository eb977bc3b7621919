"""A real MLflow server for tests: the class lives in the package (the demo uses it too)."""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from controller.registry.mlflow_server import MlflowServer, free_port

__all__ = ["MlflowServer", "free_port", "mlflow_server", "mlflow_ui"]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory) -> MlflowServer:
    """One MLflow server per test session. Webhook list cache at 1 s (MLflow's default
    of 60 s would delay the first delivery of a new webhook by up to a minute)."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow"), webhook_cache_ttl_s=1)
    server.start()
    yield server
    server.stop()


def placeholder_checkpoint(root: Path, name: str) -> Path:
    """A folder MLflow registers like a checkpoint (for tests whose model servers are fakes)."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "name": name}))
    (folder / "weights.bin").write_bytes(name.encode() * 64)
    return folder


def mlflow_ui(url: str, path: str, body: dict) -> None:
    """What MLflow's web UI sends when a person sets an alias or a tag (its /ajax-api endpoints)."""
    req = urllib.request.Request(f"{url}/ajax-api/2.0/mlflow/{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
