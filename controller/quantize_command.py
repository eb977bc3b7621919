"""`relctl quantize MODEL VERSION`: the quantization stage alone, on a registered version."""
from __future__ import annotations

from pathlib import Path


def quantize_version(mlflow_uri: str, model: str, version: str, backend: str, workdir: str,
                     calibration: str | None = None) -> dict:
    from controller.cli import CliError
    from controller.registry.mlflow_registry import MlflowRegistry
    from controller.registry.types import RegistryError
    from policies.schema import QuantizePolicy
    from quantize.cli import _print_progress, run_quantize_command
    from quantize.errors import QuantizeError

    try:
        registry = MlflowRegistry(mlflow_uri)
        registry.get_version(model, version)
        parent = registry.download(model, version, Path(workdir) / "checkpoints" / model / version)
        result = run_quantize_command(parent, backend=backend, tracking_uri=mlflow_uri, on_progress=_print_progress,
                                      quantize_policy=QuantizePolicy(calibration=calibration))
    except (RegistryError, QuantizeError) as exc:
        raise CliError(str(exc)) from None
    return {"model": model, "version": version, **result}
