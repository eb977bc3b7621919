"""The vLLM pod's init container (controller.k8s.fetch_model) against a real `mlflow server`."""
import json

import pytest

from controller.k8s import fetch_model
from controller.registry import integrity
from controller.registry.mlflow_registry import MlflowRegistry
from tests.integration.test_registry_integrity import signing, stored_file  # noqa: F401
from tests.integration.test_registry_mlflow import make_checkpoint
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


def test_a_tampered_version_exits_with_the_integrity_code_naming_the_file(mlflow_server, signing, tmp_path,  # noqa: F811
                                                                          capsys, monkeypatch):
    registry = MlflowRegistry(mlflow_server.url)
    version = registry.register_checkpoint("k8s-tampered", make_checkpoint(tmp_path / "ckpt", "one"))
    model_id = registry.get_version("k8s-tampered", version).source.removeprefix("models:/")
    weights = stored_file(mlflow_server, model_id, "model.safetensors")
    weights.write_bytes(bytes([weights.read_bytes()[0] ^ 1]) + weights.read_bytes()[1:])
    argv = ["--model", "k8s-tampered", "--version", version, "--dest", str(tmp_path / "models"),
            "--tracking-uri", mlflow_server.url]
    (tmp_path / "models").mkdir()

    assert fetch_model.main(argv) == fetch_model.INTEGRITY_EXIT
    err = capsys.readouterr().err
    assert "fetch_model: integrity check failed:" in err and "changed: model.safetensors" in err
    assert not (tmp_path / "models" / "current").exists()


def test_with_a_verify_key_an_unsigned_version_is_refused(mlflow_server, tmp_path, capsys, monkeypatch):  # noqa: F811
    monkeypatch.delenv(integrity.SIGNING_KEY_ENV, raising=False)
    monkeypatch.delenv(integrity.VERIFY_KEY_ENV, raising=False)
    registry = MlflowRegistry(mlflow_server.url)
    version = registry.register_checkpoint("k8s-unsigned", make_checkpoint(tmp_path / "c", "u"))
    monkeypatch.setenv(integrity.VERIFY_KEY_ENV, "ab" * 32)          # what the pool renders from the controller's key
    (tmp_path / "models").mkdir()
    argv = ["--model", "k8s-unsigned", "--version", version, "--dest", str(tmp_path / "models"),
            "--tracking-uri", mlflow_server.url]
    assert fetch_model.main(argv) == fetch_model.INTEGRITY_EXIT
    assert "the manifest is not signed" in capsys.readouterr().err
