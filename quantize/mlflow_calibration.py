"""Calibration data kept in MLflow: a dataset logged as a run input, or a run artifact.

References (the policy's `quantize.calibration`, or `relctl quantize --calibration`):
  mlflow-dataset:RUN_ID/NAME   the dataset NAME logged with mlflow.log_input() on run RUN_ID;
                               its source (local file, S3, HTTP, ...) is downloaded
  runs:/RUN_ID/PATH            a file logged as an artifact (also models:/ and mlflow-artifacts:/)
The downloaded file is read like a local one (.txt, .jsonl, .csv or .parquet with a "text"
column). The job resolves the reference before the worker starts, so the worker needs no
MLflow access and a failed download is reported before any quantization work.
"""
from __future__ import annotations

from pathlib import Path

from quantize.errors import QuantizeError

DATASET_SCHEME = "mlflow-dataset:"
ARTIFACT_SCHEMES = ("runs:/", "models:/", "mlflow-artifacts:/")


def is_mlflow_reference(ref: str | None) -> bool:
    return bool(ref) and (ref.startswith(DATASET_SCHEME) or ref.startswith(ARTIFACT_SCHEMES))


def fetch(ref: str, dest_dir: Path, tracking_uri: str | None = None) -> Path:
    """Download the referenced calibration data into dest_dir; returns the local file."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    if ref.startswith(DATASET_SCHEME):
        from mlflow.data import get_source

        dataset_input = find_dataset_input(ref, tracking_uri)
        try:
            local = get_source(dataset_input).load(dst_path=str(dest_dir))
        except Exception as exc:
            raise QuantizeError(f"calibration dataset {ref}: its source "
                                f"({dataset_input.dataset.source_type}) cannot be downloaded: {exc}",
                                cause="calibration") from exc
    else:
        import mlflow.artifacts

        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=ref, dst_path=str(dest_dir),
                                                       tracking_uri=tracking_uri)
        except Exception as exc:
            raise QuantizeError(f"calibration artifact {ref} cannot be downloaded: {exc}", cause="calibration") from exc
    return _single_file(Path(local), ref)


def find_dataset_input(ref: str, tracking_uri: str | None = None):
    """The mlflow.entities.DatasetInput named by an mlflow-dataset: reference."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    run_id, _, name = ref[len(DATASET_SCHEME):].partition("/")
    if not run_id or not name:
        raise QuantizeError(f"calibration reference {ref!r}: expected {DATASET_SCHEME}RUN_ID/DATASET_NAME",
                            cause="calibration")
    try:
        run = MlflowClient(tracking_uri=tracking_uri).get_run(run_id)
    except MlflowException as exc:
        raise QuantizeError(f"calibration dataset {ref}: run {run_id} not found in MLflow ({exc.message})",
                            cause="calibration") from exc
    inputs = run.inputs.dataset_inputs if run.inputs else []
    for dataset_input in inputs:
        if dataset_input.dataset.name == name:
            return dataset_input
    known = ", ".join(sorted(d.dataset.name for d in inputs)) or "none"
    raise QuantizeError(f"calibration dataset {ref}: run {run_id} has no input dataset named {name!r} "
                        f"(its datasets: {known})", cause="calibration")


def _single_file(path: Path, ref: str) -> Path:
    if path.is_file():
        return path
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else []
    if len(files) != 1:
        raise QuantizeError(f"calibration {ref}: expected one data file, found {len(files)} in the download",
                            cause="calibration")
    return files[0]
