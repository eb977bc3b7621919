"""An evaluation as an MLflow run linked to the version it measured.

Experiment `relctl-evaluations`; metrics `relctl.eval.<suite>.accuracy|compliance|items|errors`
(and `relctl.eval.accuracy|compliance` over all suites), each linked to the version's LoggedModel;
each suite file is a logged input (dataset, context `evaluation`); the drift comparison is an
artifact. The version gets tags `relctl.eval.last_run_id` and `relctl.eval.drift`.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from controller.scheduler.drift import SuiteFigures
from quantize.suites import BUILTIN

EXPERIMENT = "relctl-evaluations"


def _experiment_id(client) -> str:
    exp = client.get_experiment_by_name(EXPERIMENT)
    return exp.experiment_id if exp else client.create_experiment(EXPERIMENT)


def logged_model_id(source: str) -> str | None:
    """`models:/m-abc` (how relctl registers checkpoints) -> `m-abc`."""
    rest = source.removeprefix("models:/") if source.startswith("models:/") else ""
    return rest if rest and "/" not in rest else None


def suite_dataset(suite: str):
    from mlflow.entities import Dataset, DatasetInput, InputTag
    path = BUILTIN.get(suite) or Path(suite)
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    source = json.dumps({"uri": str(Path(path).resolve())})
    return DatasetInput(Dataset(name=suite, digest=digest, source_type="local", source=source),
                        [InputTag("mlflow.data.context", "evaluation")])


def _metrics(figures: dict[str, SuiteFigures], model_id: str | None, ts: int) -> list:
    from mlflow.entities import Metric
    out = []
    for suite, f in figures.items():
        for key, value in f.to_json().items():
            out.append(Metric(f"relctl.eval.{suite}.{key}", float(value), ts, 0, model_id=model_id))
    total = sum(f.items for f in figures.values())
    for key in ("accuracy", "compliance"):
        value = sum(getattr(f, key) * f.items for f in figures.values()) / total
        out.append(Metric(f"relctl.eval.{key}", value, ts, 0, model_id=model_id))
    return out


def log_evaluation(tracking_uri: str, model: str, version: str, source: str, run_id: str, trigger: str,
                   figures: dict[str, SuiteFigures], drift: dict[str, Any], ts_ms: int) -> str:
    """Create the finished run; returns its MLflow run id."""
    from mlflow import MlflowClient   # imported here: the controller starts without loading mlflow
    from mlflow.entities import LoggedModelInput, RunTag
    client = MlflowClient(tracking_uri=tracking_uri)
    model_id = logged_model_id(source)
    tags = {"relctl.model": model, "relctl.version": version, "relctl.eval.run_id": run_id,
            "relctl.eval.trigger": trigger, "relctl.eval.drift": str(bool(drift.get("drifted"))).lower()}
    run = client.create_run(_experiment_id(client), run_name=f"{model}-v{version}-{run_id}", tags=tags)
    mlflow_run = run.info.run_id
    try:
        client.log_batch(mlflow_run, metrics=_metrics(figures, model_id, ts_ms),
                         tags=[RunTag("relctl.eval.suites", ",".join(figures))])
        client.log_inputs(mlflow_run, datasets=[suite_dataset(s) for s in figures],
                          models=[LoggedModelInput(model_id)] if model_id else None)
        client.log_dict(mlflow_run, drift, "evaluation/drift.json")
    except Exception:
        client.set_terminated(mlflow_run, status="FAILED")
        raise
    client.set_terminated(mlflow_run, status="FINISHED")
    return mlflow_run
