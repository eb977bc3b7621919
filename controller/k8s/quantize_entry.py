"""The quantization Job's entry point (in relctl's image, on a GPU node).

Downloads the parent version from MLflow, quantizes, measures and gates it with the same
code as the local job (quantize.cli.run_quantize_command), registers a passing build in
MLflow with its lineage tags, and leaves a small JSON result as the container's
termination message, which the controller reads from the pod's status.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

TERMINATION_LOG = Path("/dev/termination-log")
MAX_MESSAGE = 4096            # Kubernetes keeps at most 4096 bytes of a termination message


def run(tracking_uri: str, model: str, version: str, release: str, sections: dict, workdir: Path) -> dict:
    from controller.registry.conventions import TAG_RELEASE_ID, lineage_tags
    from controller.registry.mlflow_registry import MlflowRegistry
    from policies.schema import QualityGate, QuantizePolicy
    from quantize.base import spec_from_policy
    from quantize.cli import run_quantize_command
    qp, gate = QuantizePolicy(**sections.get("quantize", {})), QualityGate(**sections.get("quality", {}))
    registry = MlflowRegistry(tracking_uri)
    parent = registry.download(model, version, workdir / "checkpoints")
    result = run_quantize_command(parent, workdir / "build", quantize_policy=qp, quality=gate,
                                  tracking_uri=tracking_uri, on_progress=_progress)
    out = {"status": "gate_failed", "gate": result["gate"], "mlflow_run_id": result.get("mlflow_run_id")}
    if result["gate"]["passed"]:
        figures = {k: v for k, v in result["report"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        tags = {**lineage_tags(version, spec_from_policy(qp).label(), figures), TAG_RELEASE_ID: release}
        out.update(status="succeeded", build_version=registry.register_checkpoint(model, Path(result["build_dir"]),
                                                                                  tags=tags))
    return out


def _progress(event: dict) -> None:
    print(json.dumps({"progress": event}), flush=True)     # the pod's log shows the progress


def write_result(doc: dict, path: Path) -> None:
    text = json.dumps(doc, sort_keys=True)
    if len(text.encode()) > MAX_MESSAGE:
        text = json.dumps({k: doc[k] for k in ("status", "build_version", "error") if k in doc})
    if path.parent.exists():
        path.write_text(text)
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="quantize_entry", description=__doc__.splitlines()[0])
    for flag in ("--model", "--version", "--release", "--policy-json"):
        p.add_argument(flag, required=True)
    p.add_argument("--workdir", type=Path, default=Path("/work"))
    p.add_argument("--result-file", type=Path, default=TERMINATION_LOG, help="the container's terminationMessagePath")
    p.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", ""))
    args = p.parse_args(argv)
    from controller.registry.types import RegistryError
    from quantize.errors import QuantizeError
    try:
        doc = run(args.tracking_uri, args.model, args.version, args.release, json.loads(args.policy_json), args.workdir)
    except (RegistryError, QuantizeError, ValueError) as exc:
        write_result({"status": "error", "error": str(exc)[:2000]}, args.result_file)
        return 1
    write_result(doc, args.result_file)
    return 0                                   # a gate failure is a result, not a failed Job


if __name__ == "__main__":
    sys.exit(main())
