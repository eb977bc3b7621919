"""Calibration data from a real MLflow server: a dataset logged as a run input, and a run artifact.

The job downloads the data before its worker starts; a recording backend (the worker process
is real) shows which texts reached the quantizer. The quantization run gets the dataset as
an input, so the build's lineage names its calibration data.
"""
from __future__ import annotations

import json
from pathlib import Path

import mlflow.data
import pandas as pd
import pytest
from mlflow.entities import DatasetInput, InputTag
from mlflow.tracking import MlflowClient

from quantize.base import BACKENDS_ENV, QuantizeResult, QuantizeSpec
from quantize.errors import QuantizeError
from quantize.job import run_quantize_job
from quantize.mlflow_calibration import fetch
from quantize.mlflow_log import log_quantization_run
from tests.support.mlflow_server import mlflow_server  # noqa: F401
from tests.support.tiny_models import write_untrained_checkpoint

HERE = "tests.integration.test_quantize_mlflow_calibration"
TEXTS = [f"Calibration sample {i}: the capital of France is Paris and the day after Monday is Tuesday. "
         for i in range(12)]


class RecordingQuantizer:
    """Writes the texts it was given into the build, so the test can read them back."""
    name = "recording"

    def check(self, config, spec) -> None:
        pass

    def quantize(self, parent_dir, out_dir, spec, texts, progress):
        (Path(out_dir) / "texts.json").write_text(json.dumps(texts))
        return QuantizeResult(Path(out_dir), "recording", spec, "awq", 0, 0.01)


@pytest.fixture(autouse=True)
def recording_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BACKENDS_ENV, f"recording={HERE}:RecordingQuantizer")


@pytest.fixture(scope="module")
def logged(mlflow_server, tmp_path_factory) -> dict:  # noqa: F811
    """A run with a calibration table logged as dataset "calib" and as artifact data/calib.jsonl."""
    folder = tmp_path_factory.mktemp("calib")
    table = folder / "calib.parquet"
    pd.DataFrame({"text": TEXTS, "source": "test"}).to_parquet(table)
    jsonl = folder / "calib.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    client = MlflowClient(mlflow_server.url)
    run_id = client.create_run(client.create_experiment("calibration-data")).info.run_id
    dataset = mlflow.data.from_pandas(pd.read_parquet(table), source=str(table), name="calib")
    client.log_inputs(run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(),
                                                     [InputTag("mlflow.data.context", "calibration")])])
    client.log_artifact(run_id, str(jsonl), artifact_path="data")
    client.set_terminated(run_id)
    return {"run_id": run_id, "uri": mlflow_server.url, "digest": dataset.digest}


@pytest.fixture(scope="module")
def parent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_untrained_checkpoint(tmp_path_factory.mktemp("calib-parent") / "parent")


@pytest.mark.parametrize("kind", ["dataset", "artifact"])
def test_fetch_downloads_the_referenced_texts(logged: dict, tmp_path: Path, kind: str) -> None:
    ref = (f"mlflow-dataset:{logged['run_id']}/calib" if kind == "dataset"
           else f"runs:/{logged['run_id']}/data/calib.jsonl")
    from quantize.data_files import load_texts

    assert load_texts(fetch(ref, tmp_path / "dl", logged["uri"])) == TEXTS


def test_job_quantizes_with_the_dataset_and_logs_it_as_run_input(logged: dict, parent: Path, tmp_path: Path) -> None:
    ref = f"mlflow-dataset:{logged['run_id']}/calib"
    spec = QuantizeSpec(calibration=ref, max_calib_seq_len=128)
    job = run_quantize_job(parent, tmp_path / "out", spec, backend="recording", timeout_s=120, max_memory_gb=8,
                           tracking_uri=logged["uri"])
    assert json.loads((job.build_dir / "texts.json").read_text()) == TEXTS
    assert job.result.spec.calibration == ref                      # the reference, not the temporary download
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.calibration")]

    run_id = log_quantization_run(logged["uri"], None, job, job.build_dir)
    run = MlflowClient(logged["uri"]).get_run(run_id)
    inputs = {(d.dataset.name, d.dataset.digest, {t.key: t.value for t in d.tags}["mlflow.data.context"])
              for d in run.inputs.dataset_inputs}
    assert inputs == {("calib", logged["digest"], "calibration")}
    assert run.data.params["spec.calibration"] == ref


@pytest.mark.parametrize("ref, message", [
    ("mlflow-dataset:{run}/nope", "has no input dataset named 'nope' (its datasets: calib)"),
    ("mlflow-dataset:0123456789abcdef0123456789abcdef/calib", "run 0123456789abcdef0123456789abcdef not found"),
    ("mlflow-dataset:{run}", "expected mlflow-dataset:RUN_ID/DATASET_NAME"),
    ("runs:/{run}/data/missing.jsonl", "cannot be downloaded"),
])
def test_bad_references_fail_before_the_worker_starts(logged: dict, parent: Path, tmp_path: Path,
                                                      ref: str, message: str) -> None:
    spec = QuantizeSpec(calibration=ref.format(run=logged["run_id"]))
    with pytest.raises(QuantizeError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        run_quantize_job(parent, tmp_path / "out", spec, backend="recording", timeout_s=60, max_memory_gb=8,
                         tracking_uri=logged["uri"])
    assert info.value.cause == "calibration"
    assert list(tmp_path.iterdir()) == []                          # nothing staged, nothing built
