"""Model integrity against a real `mlflow server`: a registered checkpoint carries its signed
SHA-256 manifest; a file changed in the server's artifact store fails `relctl verify` and the
download, naming the file."""
from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization

from controller.cli import main
from controller.registry import checkpoint_files
from controller.registry import integrity as i
from controller.registry.mlflow_registry import MlflowRegistry
from tests.support.mlflow_server import mlflow_server  # noqa: F401
from tests.integration.test_registry_mlflow import make_checkpoint

pytestmark = pytest.mark.integration


@pytest.fixture
def signing(monkeypatch):
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    monkeypatch.setenv(i.SIGNING_KEY_ENV, raw.hex())
    return key


def stored_file(server, model_id: str, name: str):
    """The artifact as the server keeps it on disk (its --artifacts-destination)."""
    (path,) = [p for p in (server.workdir / "artifacts").rglob(name) if model_id in p.as_posix()]
    return path


def test_tampered_artifact_fails_verify_and_download_naming_the_file(mlflow_server, signing, tmp_path,  # noqa: F811
                                                                     capsys):
    registry = MlflowRegistry(mlflow_server.url)
    name = "tiny-integrity"
    version = registry.register_checkpoint(name, make_checkpoint(tmp_path / "ckpt", "one"))
    tags = registry.get_version(name, version).tags
    assert tags[i.TAG_KEY_ID] == i.key_id(signing.public_key()) and len(tags[i.TAG_DIGEST]) == 64

    folder = registry.download(name, version, tmp_path / "cache")
    assert json.loads((folder / i.MANIFEST_FILE).read_text())["files"].keys() == {
        "config.json", "model.safetensors", "tokenizer/vocab.json"}
    assert main(["verify", name, version, "--mlflow-uri", mlflow_server.url]) == 0
    assert json.loads(capsys.readouterr().out)["signature"].startswith("valid")

    model_id = registry.get_version(name, version).source.removeprefix("models:/")
    weights = stored_file(mlflow_server, model_id, "model.safetensors")
    data = weights.read_bytes()
    weights.write_bytes(bytes([data[0] ^ 1]) + data[1:])             # one bit, same size
    (weights.parent / "backdoor.py").write_text("import os")

    assert main(["verify", name, version, "--mlflow-uri", mlflow_server.url]) == 1
    err = capsys.readouterr().err
    assert "changed: model.safetensors" in err and "extra: backdoor.py" in err
    with pytest.raises(i.IntegrityError) as caught:
        registry.download(name, version, tmp_path / "fresh")
    assert (caught.value.changed, caught.value.extra) == (["model.safetensors"], ["backdoor.py"])
    target = checkpoint_files.cache_path(tmp_path / "fresh", name, version)
    assert not target.exists() and list(target.parent.iterdir()) == []    # nothing half-trusted left


def test_a_manifest_rewritten_on_the_server_no_longer_matches_its_tag(mlflow_server, tmp_path, capsys):  # noqa: F811
    registry = MlflowRegistry(mlflow_server.url)
    name = "tiny-integrity-manifest"
    version = registry.register_checkpoint(name, make_checkpoint(tmp_path / "ckpt", "two"))
    model_id = registry.get_version(name, version).source.removeprefix("models:/")
    config = stored_file(mlflow_server, model_id, "config.json")
    config.write_text('{"model_type": "llama", "marker": "evil"}')
    manifest = stored_file(mlflow_server, model_id, i.MANIFEST_FILE)
    manifest.write_bytes(i.manifest_bytes(i.build_manifest(config.parent)))   # an attacker's fresh manifest
    assert main(["verify", name, version, "--mlflow-uri", mlflow_server.url]) == 1
    assert f"{i.MANIFEST_FILE} does not hash to the version's {i.TAG_DIGEST} tag" in capsys.readouterr().err
