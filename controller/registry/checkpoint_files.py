"""Checkpoint folders on local disk: validation before upload, cached downloads."""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from mlflow.artifacts import download_artifacts

from controller.registry.types import RegistryError

COMPLETE_MARKER = ".relctl-download-complete"


def check_checkpoint_dir(checkpoint_dir: Path) -> Path:
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        raise RegistryError(f"checkpoint folder {folder} does not exist or is not a folder")
    if not (folder / "config.json").is_file():
        raise RegistryError(f"checkpoint folder {folder} has no config.json at its top")
    return folder.resolve()


def cache_path(dest_dir: Path, name: str, version: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    return Path(dest_dir) / safe / f"v{version}"


def is_complete(target: Path) -> bool:
    return (target / COMPLETE_MARKER).is_file() and (target / "config.json").is_file()


def download_into(tracking_uri: str, artifact_uri: str, target: Path) -> None:
    """Downloads into a temporary sibling, then renames, so that a crash or a
    concurrent download never leaves a half-written folder at `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        local = Path(download_artifacts(artifact_uri=artifact_uri, dst_path=str(staging),
                                        tracking_uri=tracking_uri))
        if not (local / "config.json").is_file():
            raise RegistryError(f"{artifact_uri} holds no config.json at its top: "
                                "not a checkpoint folder")
        (local / COMPLETE_MARKER).write_text("ok\n")
        _publish(local, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish(local: Path, target: Path) -> None:
    if target.exists() and not is_complete(target):
        shutil.rmtree(target)  # leftover of an older, interrupted layout
    try:
        os.replace(local, target)
    except OSError:
        if not is_complete(target):  # someone else finished first: theirs is as good
            raise
