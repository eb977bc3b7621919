"""A build that finished quantizing before the controller was killed, kept for the restarted job.

Quantizing is the long part of a build (minutes here, hours for a large model on a GPU). The
quantize job moves a build into its folder only once the worker has finished, and the stage
then writes a record beside it: the parent version, the spec, the job's figures and a SHA-256
manifest of the files. A build job restarted after a crash (while evaluating, say) reuses the
folder when the record matches the release's parent and spec and every file still matches the
manifest; anything else -- no record, another spec, a changed, missing or extra file -- is
built again. A half-built folder has no record, so it is never trusted.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from controller.registry.integrity import IntegrityError, build_manifest, verify_dir
from quantize.base import QuantizeResult, QuantizeSpec
from quantize.job import QuantizeJobResult

log = logging.getLogger(__name__)


def record_path(build_dir: Path) -> Path:
    return build_dir.with_name(build_dir.name + ".finished.json")


def record(build_dir: Path, parent_version: str, job: QuantizeJobResult) -> None:
    """Written once the build is in its folder (atomically: a record is whole or absent)."""
    data = {"parent_version": parent_version, "spec": job.result.spec.to_dict(), "result": job.result.to_dict(),
            "seconds": job.seconds, "peak_memory_mb": job.peak_memory_mb, "log_text": job.log_text,
            "manifest": build_manifest(build_dir)}
    path = record_path(build_dir)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def reuse(build_dir: Path, parent_version: str, spec: QuantizeSpec) -> QuantizeJobResult | None:
    """The finished build of this parent and spec, its files checked; None when it must be built."""
    try:
        data = json.loads(record_path(build_dir).read_text())
    except (OSError, ValueError):
        return None
    if data.get("parent_version") != parent_version or data.get("spec") != json.loads(json.dumps(spec.to_dict())):
        return None
    try:
        verify_dir(build_dir, data["manifest"])
        result = QuantizeResult.from_dict(data["result"])
    except (IntegrityError, OSError, KeyError, TypeError, ValueError) as exc:
        log.warning("quantize.finished_build_refused", extra={"build": str(build_dir), "error": str(exc)})
        return None
    return QuantizeJobResult(result=result, log_text=data.get("log_text", ""), seconds=float(data.get("seconds", 0)),
                             peak_memory_mb=float(data.get("peak_memory_mb", 0)))


def forget(build_dir: Path) -> None:
    record_path(build_dir).unlink(missing_ok=True)
