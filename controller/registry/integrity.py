"""Model integrity: a SHA-256 manifest of every file of a checkpoint, optionally signed (ed25519).

At registration relctl uploads `relctl-manifest.json` beside the checkpoint's files and tags
the version with the manifest's own SHA-256 (`relctl.manifest_sha256`) and, when
RELCTL_SIGNING_KEY is set, an ed25519 signature of the manifest (`relctl.manifest_signature`,
`relctl.manifest_key_id`). A download is checked against the tag before it is used: the
manifest must hash to the tag, every listed file must be there with its hash, and nothing
else may be. With RELCTL_VERIFY_KEY (or a signing key) set, the signature is required too.

Keys: PEM (PKCS#8 private / SubjectPublicKeyInfo public) or the raw 32 bytes as hex or
base64. They are read from the environment only and never printed.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from pathlib import Path

from controller.registry.types import RegistryError

MANIFEST_FILE = "relctl-manifest.json"
FORMAT = "relctl-manifest/1"
TAG_DIGEST = "relctl.manifest_sha256"
TAG_SIGNATURE = "relctl.manifest_signature"
TAG_KEY_ID = "relctl.manifest_key_id"
SIGNING_KEY_ENV = "RELCTL_SIGNING_KEY"
VERIFY_KEY_ENV = "RELCTL_VERIFY_KEY"
# Not part of the checkpoint: the manifest itself and the download cache's completion marker.
IGNORED = frozenset({MANIFEST_FILE, ".relctl-download-complete"})


class IntegrityError(RegistryError):
    """The files are not the ones registered; the message names each difference."""

    def __init__(self, message: str, *, changed: list[str] = (), missing: list[str] = (),
                 extra: list[str] = ()):
        super().__init__(message)
        self.changed, self.missing, self.extra = list(changed), list(missing), list(extra)


# ---- manifest ---------------------------------------------------------------------

def file_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def checkpoint_files(folder: Path) -> list[str]:
    """Every regular file under `folder` (links to files followed), as sorted POSIX paths."""
    found = []
    for root, _dirs, names in os.walk(folder):
        for name in names:
            rel = (Path(root) / name).relative_to(folder).as_posix()
            if rel not in IGNORED and (Path(root) / name).is_file():
                found.append(rel)
    return sorted(found)


def build_manifest(folder: Path) -> dict:
    folder = Path(folder)
    return {"format": FORMAT, "algorithm": "sha256",
            "files": {rel: {"sha256": file_sha256(folder / rel), "size": (folder / rel).stat().st_size}
                      for rel in checkpoint_files(folder)}}


def manifest_bytes(manifest: dict) -> bytes:
    """The exact bytes uploaded, hashed and signed: sorted, compact JSON."""
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_dir(folder: Path, manifest: dict) -> int:
    """Raise IntegrityError naming every changed, missing or extra file; returns the files checked."""
    folder = Path(folder)
    listed = manifest.get("files")
    if manifest.get("format") != FORMAT or not isinstance(listed, dict):
        raise IntegrityError(f"{MANIFEST_FILE}: not a {FORMAT} manifest")
    present = set(checkpoint_files(folder))
    missing = sorted(set(listed) - present)
    extra = sorted(present - set(listed))
    changed = sorted(rel for rel in set(listed) & present
                     if (folder / rel).stat().st_size != listed[rel].get("size")
                     or file_sha256(folder / rel) != listed[rel].get("sha256"))
    if changed or missing or extra:
        parts = [f"{what}: {', '.join(names)}" for what, names in
                 (("changed", changed), ("missing", missing), ("extra", extra)) if names]
        raise IntegrityError(f"{folder} does not match its manifest ({'; '.join(parts)})",
                             changed=changed, missing=missing, extra=extra)
    return len(listed)


# ---- keys and signatures ----------------------------------------------------------

def _key_bytes(text: str, env: str) -> bytes:
    text = text.strip()
    try:
        raw = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != 32:
        raise IntegrityError(f"{env}: not an ed25519 key (PEM, or 32 bytes as hex or base64)")
    return raw


def signing_key(environ=os.environ):
    """The ed25519 private key from RELCTL_SIGNING_KEY, or None."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    text = environ.get(SIGNING_KEY_ENV, "")
    if not text.strip():
        return None
    if text.lstrip().startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(text.encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise IntegrityError(f"{SIGNING_KEY_ENV}: not an ed25519 private key")
        return key
    return Ed25519PrivateKey.from_private_bytes(_key_bytes(text, SIGNING_KEY_ENV))


def verify_key(environ=os.environ):
    """The ed25519 public key from RELCTL_VERIFY_KEY, else the signing key's; None if neither."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    text = environ.get(VERIFY_KEY_ENV, "")
    if not text.strip():
        private = signing_key(environ)
        return private.public_key() if private else None
    if text.lstrip().startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise IntegrityError(f"{VERIFY_KEY_ENV}: not an ed25519 public key")
        return key
    return Ed25519PublicKey.from_public_bytes(_key_bytes(text, VERIFY_KEY_ENV))


def key_id(public_key) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign(data: bytes, private_key) -> str:
    return base64.b64encode(private_key.sign(data)).decode()


def check_signature(data: bytes, signature_b64: str, public_key) -> None:
    from cryptography.exceptions import InvalidSignature

    try:
        public_key.verify(base64.b64decode(signature_b64, validate=True), data)
    except (InvalidSignature, ValueError, binascii.Error):
        raise IntegrityError(f"{MANIFEST_FILE}: signature does not verify with key "
                             f"{key_id(public_key)}") from None


# ---- registration and download ----------------------------------------------------

def write_manifest(folder: Path, out_dir: Path, environ=os.environ) -> dict[str, str]:
    """Write out_dir/relctl-manifest.json for `folder`; returns the tags that anchor it."""
    data = manifest_bytes(build_manifest(folder))
    (Path(out_dir) / MANIFEST_FILE).write_bytes(data)
    tags = {TAG_DIGEST: digest(data)}
    private = signing_key(environ)
    if private is not None:
        tags |= {TAG_SIGNATURE: sign(data, private), TAG_KEY_ID: key_id(private.public_key())}
    return tags


def verify_download(folder: Path, tags: dict[str, str], environ=os.environ) -> dict:
    """Check a downloaded version against its tags; returns what was checked."""
    folder = Path(folder)
    if TAG_DIGEST not in tags:
        raise IntegrityError(f"no {TAG_DIGEST} tag: the version was registered without a manifest")
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise IntegrityError(f"{MANIFEST_FILE} is missing from {folder}", missing=[MANIFEST_FILE])
    data = path.read_bytes()
    if digest(data) != tags[TAG_DIGEST]:
        raise IntegrityError(f"{MANIFEST_FILE} does not hash to the version's {TAG_DIGEST} tag",
                             changed=[MANIFEST_FILE])
    signature = _check_signature_policy(data, tags, environ)
    try:
        manifest = json.loads(data)
    except ValueError:
        raise IntegrityError(f"{MANIFEST_FILE} is not JSON") from None
    files = verify_dir(folder, manifest)
    return {"files": files, "bytes": sum(f["size"] for f in manifest["files"].values()),
            "manifest_sha256": tags[TAG_DIGEST], "signature": signature}


def _check_signature_policy(data: bytes, tags: dict[str, str], environ) -> str:
    public = verify_key(environ)
    if public is None:
        return "not checked (no RELCTL_VERIFY_KEY)" if TAG_SIGNATURE in tags else "unsigned"
    if TAG_SIGNATURE not in tags:
        raise IntegrityError(f"the manifest is not signed, and {VERIFY_KEY_ENV} requires a signature")
    check_signature(data, tags[TAG_SIGNATURE], public)
    return f"valid (key {key_id(public)})"
