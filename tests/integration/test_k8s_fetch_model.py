"""The vLLM pod's init container (controller.k8s.fetch_model) against a real `mlflow server`."""
import json

import pytest

from controller.k8s import fetch_model
from controller.registry.mlflow_registry import MlflowRegistry
from tests.support.mlflow_server import mlflow_server  # noqa: F401

pytestmark = pytest.mark.integration


def test_fetches_the_version_and_points_current_at_it(mlflow_server, tmp_path, capsys):  # noqa: F811
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({"model_type": "llama", "marker": "k8s"}))
    (ckpt / "model.safetensors").write_bytes(bytes(range(256)))
    version = MlflowRegistry(mlflow_server.url).register_checkpoint("Org_K8s-fetch", ckpt)
    dest = tmp_path / "models"
    dest.mkdir()
    argv = ["--model", "Org_K8s-fetch", "--version", version, "--dest", str(dest),
            "--tracking-uri", mlflow_server.url]
    assert fetch_model.main(argv) == 0
    assert json.loads((dest / "current" / "config.json").read_text())["marker"] == "k8s"
    assert fetch_model.main(argv) == 0                                    # a restarted init container
    assert (dest / "current" / "model.safetensors").read_bytes() == bytes(range(256))

    assert fetch_model.main([*argv[:3], "99", *argv[4:]]) == 1
    assert "fetch_model: error:" in capsys.readouterr().err
