"""Checkpoint manifests: every file hashed, each kind of difference named, ed25519 signatures."""
from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.registry import integrity as i


def checkpoint(folder):
    (folder / "tokenizer").mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 8)
    (folder / "tokenizer" / "vocab.json").write_text("{}")
    return folder


def raw_private(key) -> bytes:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())


@pytest.fixture
def folder(tmp_path):
    return checkpoint(tmp_path / "ckpt")


def test_manifest_lists_every_file_but_itself_and_the_cache_marker(folder):
    (folder / i.MANIFEST_FILE).write_text("stale")
    (folder / ".relctl-download-complete").write_text("ok")
    manifest = i.build_manifest(folder)
    assert sorted(manifest["files"]) == ["config.json", "model.safetensors", "tokenizer/vocab.json"]
    assert manifest["files"]["model.safetensors"]["size"] == 2048
    assert i.verify_dir(folder, manifest) == 3


@pytest.mark.parametrize("tamper, kind, name", [
    (lambda f: (f / "model.safetensors").write_bytes(bytes(reversed(range(256))) * 8), "changed",
     "model.safetensors"),                                               # same size, other bytes
    (lambda f: (f / "tokenizer" / "vocab.json").unlink(), "missing", "tokenizer/vocab.json"),
    (lambda f: (f / "tokenizer" / "merges.txt").write_text("a b"), "extra", "tokenizer/merges.txt"),
])
def test_each_difference_is_named(folder, tamper, kind, name):
    manifest = i.build_manifest(folder)
    tamper(folder)
    with pytest.raises(i.IntegrityError) as err:
        i.verify_dir(folder, manifest)
    assert getattr(err.value, kind) == [name] and f"{kind}: {name}" in str(err.value)


def test_registration_tags_anchor_the_manifest_and_a_download_is_checked_against_them(folder, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    tags = i.write_manifest(folder, out, environ={})
    assert set(tags) == {i.TAG_DIGEST}
    (folder / i.MANIFEST_FILE).write_bytes((out / i.MANIFEST_FILE).read_bytes())   # as downloaded
    assert i.verify_download(folder, tags, environ={})["files"] == 3
    # A manifest rewritten to match tampered files no longer hashes to the tag.
    manifest = json.loads((folder / i.MANIFEST_FILE).read_text())
    manifest["files"]["config.json"]["sha256"] = "0" * 64
    (folder / i.MANIFEST_FILE).write_bytes(i.manifest_bytes(manifest))
    with pytest.raises(i.IntegrityError, match="does not hash to"):
        i.verify_download(folder, tags, environ={})
    (folder / i.MANIFEST_FILE).unlink()
    with pytest.raises(i.IntegrityError, match="missing"):
        i.verify_download(folder, tags, environ={})


@pytest.mark.parametrize("encode", [
    lambda k: raw_private(k).hex(),
    lambda k: base64.b64encode(raw_private(k)).decode(),
    lambda k: k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode(),
])
def test_signed_manifest_verifies_with_the_public_key_only(folder, tmp_path, encode):
    key = Ed25519PrivateKey.generate()
    tags = i.write_manifest(folder, folder, environ={i.SIGNING_KEY_ENV: encode(key)})
    assert tags[i.TAG_KEY_ID] == i.key_id(key.public_key())
    public_hex = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    checked = i.verify_download(folder, tags, environ={i.VERIFY_KEY_ENV: public_hex})
    assert checked["signature"].startswith("valid")
    other = Ed25519PrivateKey.generate().public_key()
    other_hex = other.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    with pytest.raises(i.IntegrityError, match="signature does not verify"):
        i.verify_download(folder, tags, environ={i.VERIFY_KEY_ENV: other_hex})


def test_a_verify_key_requires_a_signature(folder):
    tags = i.write_manifest(folder, folder, environ={})
    public = Ed25519PrivateKey.generate().public_key()
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert i.verify_download(folder, tags, environ={})["signature"] == "unsigned"
    with pytest.raises(i.IntegrityError, match="not signed"):
        i.verify_download(folder, tags, environ={i.VERIFY_KEY_ENV: pem.decode()})


def test_a_bad_key_names_the_variable_and_never_echoes_the_key(folder):
    with pytest.raises(i.IntegrityError) as err:
        i.write_manifest(folder, folder, environ={i.SIGNING_KEY_ENV: "not-a-key-s3cret"})
    assert i.SIGNING_KEY_ENV in str(err.value) and "s3cret" not in str(err.value)
