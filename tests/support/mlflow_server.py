"""A real MLflow server for tests: the class lives in the package (the demo uses it too)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.registry.mlflow_server import MlflowServer, free_port

__all__ = ["MlflowServer", "free_port", "mlflow_server"]


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
