"""Init container of a vLLM pod: fetch a model version from MLflow into a shared volume.

The same download code as the controller's (MlflowRegistry.download: staged, then renamed,
so a restarted init container never serves half a checkpoint); `<dest>/current` then points
at the checkpoint, which is what the vLLM container loads. The download is verified against the
version's SHA-256 manifest (tag relctl.manifest_sha256) and, with RELCTL_VERIFY_KEY set, its
signature: a version that fails exits with INTEGRITY_EXIT, which the pool reads as failed at once
(controller/k8s/health.py), never retried into a crash loop, never loaded. The controller does
not download the version itself for this pool.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

INTEGRITY_EXIT = 3      # the pod's status carries it: health.py fails the version on it at once


def fetch(tracking_uri: str, model: str, version: str, dest: Path) -> Path:
    from controller.registry.mlflow_registry import MlflowRegistry
    folder = MlflowRegistry(tracking_uri).download(model, version, dest)
    link = dest / "current"
    tmp = dest / ".current.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(folder.relative_to(dest))
    os.replace(tmp, link)          # atomic: `current` is never missing or half-made
    return folder


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fetch_model", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--dest", required=True, type=Path)
    p.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", ""))
    args = p.parse_args(argv)
    if not args.tracking_uri:
        print("fetch_model: error: set MLFLOW_TRACKING_URI or --tracking-uri", file=sys.stderr)
        return 2
    from controller.registry.integrity import IntegrityError
    from controller.registry.types import RegistryError
    try:
        folder = fetch(args.tracking_uri, args.model, args.version, args.dest)
    except IntegrityError as exc:
        print(f"fetch_model: integrity check failed: {exc}", file=sys.stderr)
        return INTEGRITY_EXIT
    except RegistryError as exc:
        # the pod's status shows this line (terminationMessagePolicy FallbackToLogsOnError)
        print(f"fetch_model: error: {exc}", file=sys.stderr)
        return 1
    print(f"fetch_model: {args.model} version {args.version} in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
