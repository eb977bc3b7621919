"""`relctl quantize MODEL VERSION`: the quantization stage alone, on a registered version."""
from __future__ import annotations

import tempfile
from pathlib import Path


def quantize_version(mlflow_uri: str, model: str, version: str, backend: str, workdir: str) -> dict:
    from controller.cli import CliError
    from controller.registry.mlflow_registry import MlflowRegistry
    from controller.registry.types import RegistryError
    from policies.schema import QuantizePolicy
    from quantize.base import spec_from_policy
    from quantize.errors import QuantizeError
    from quantize.job import run_quantize_job
    from quantize.report import quality_report

    policy = QuantizePolicy(backend=backend)
    try:
        registry = MlflowRegistry(mlflow_uri)
        registry.get_version(model, version)
        parent = registry.download(model, version, Path(workdir) / "checkpoints" / model / version)
        out = Path(tempfile.mkdtemp(prefix=f"{model}-v{version}-{backend}-", dir=_mkdir(Path(workdir) / "builds")))
        out.rmdir()
        job = run_quantize_job(parent, out, spec_from_policy(policy), backend=backend,
                               timeout_s=policy.timeout_seconds, max_memory_gb=policy.max_memory_gb,
                               on_progress=_print_progress)
        report = quality_report(parent, out, quantization_seconds=job.seconds, peak_memory_mb=job.peak_memory_mb)
    except (RegistryError, QuantizeError) as exc:
        raise CliError(str(exc)) from None
    return {"model": model, "version": version, "backend": backend, "build_dir": str(out), **report.to_dict()}


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _print_progress(event: dict) -> None:
    import sys
    print(f"  {event}", file=sys.stderr, flush=True)
