"""Attaches a quantization job's log, parameters and quality report to an MLflow run.

Uses only the mlflow-skinny client API. The registry adapter (controller/registry)
registers the build as a model version; this module only records the run.
"""
from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

from mlflow.tracking import MlflowClient

from quantize.job import QuantizeJobResult
from quantize.report import QualityReport

log = logging.getLogger(__name__)
EXPERIMENT = "relctl-quantization"


def _experiment_id(client: MlflowClient, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    return exp.experiment_id if exp else client.create_experiment(name)


def log_quantization_run(tracking_uri: str, report: QualityReport | None, job_result: QuantizeJobResult | None,
                         build_dir: Path | None, *, experiment: str = EXPERIMENT, error: str | None = None,
                         log_text: str | None = None, tags: dict[str, str] | None = None) -> str:
    """Create a finished run holding params, metrics, tags and files; returns its run id.
    A failed job is logged too (error, log_text) with status FAILED, so nothing is lost."""
    client = MlflowClient(tracking_uri=tracking_uri)
    run = client.create_run(_experiment_id(client, experiment), tags={"relctl.stage": "quantize", **(tags or {})})
    run_id = run.info.run_id
    try:
        _log_contents(client, run_id, report, job_result, build_dir, error, log_text)
    except Exception:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FAILED" if error else "FINISHED")
    log.info("quantization run logged", extra={"run_id": run_id, "failed": bool(error)})
    return run_id


def _log_contents(client: MlflowClient, run_id: str, report: QualityReport | None,
                  job_result: QuantizeJobResult | None, build_dir: Path | None, error: str | None,
                  log_text: str | None) -> None:
    if job_result is not None:
        res = job_result.result
        params = {"backend": res.backend, "quant_method": res.quant_method, "layers": res.layers,
                  **{f"spec.{k}": v for k, v in res.spec.to_dict().items()}}
        client.log_batch(run_id, params=_params(params))
        client.log_metric(run_id, "quantization_seconds", job_result.seconds)
        client.log_metric(run_id, "peak_memory_mb", job_result.peak_memory_mb)
        _log_calibration_dataset(client, run_id, res.spec.calibration)
    if report is not None:
        for key, value in report.metrics().items():
            client.log_metric(run_id, key, value)
        for key, value in report.as_tags().items():
            client.set_tag(run_id, key, value)
    if build_dir is not None:
        client.set_tag(run_id, "relctl.build_dir", str(build_dir))
    if error:
        client.set_tag(run_id, "relctl.error", error[:5000])
    with tempfile.TemporaryDirectory() as tmp:
        files = {"quantize.log": log_text if log_text is not None else (job_result.log_text if job_result else "")}
        if report is not None:
            files["quality_report.json"] = json.dumps(report.to_dict(), indent=2)
        if job_result is not None:
            files["quantize_result.json"] = json.dumps(job_result.result.to_dict(), indent=2)
        for name, text in files.items():
            (Path(tmp) / name).write_text(text)
            client.log_artifact(run_id, str(Path(tmp) / name), artifact_path="quantization")


def _log_calibration_dataset(client: MlflowClient, run_id: str, calibration: str | None) -> None:
    """Lineage: an MLflow calibration dataset becomes an input of the quantization run."""
    from mlflow.entities import DatasetInput, InputTag

    from quantize.mlflow_calibration import DATASET_SCHEME, find_dataset_input

    if calibration and calibration.startswith(DATASET_SCHEME):
        source = find_dataset_input(calibration, client.tracking_uri)
        context = InputTag("mlflow.data.context", "calibration")
        client.log_inputs(run_id, datasets=[DatasetInput(source.dataset, [context])])


def _params(values: dict) -> list:
    from mlflow.entities import Param

    return [Param(k, str(v)) for k, v in values.items()]
