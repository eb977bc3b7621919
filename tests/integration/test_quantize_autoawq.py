"""Real AutoAWQ quantization of the tiny Llama, its quality report, the gate and the MLflow run."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from policies.schema import QualityGate
from quantize.base import QuantizeSpec
from quantize.gate import check_gate
from quantize.job import QuantizeJobResult, run_quantize_job
from quantize.report import QualityReport, quality_report
from tests.support.tiny_models import tiny_cache, tiny_v1  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration
SPEC = QuantizeSpec(max_calib_samples=32, max_calib_seq_len=128)


@pytest.fixture(scope="module")
def awq_job(tiny_v1: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[QuantizeJobResult, list[dict]]:
    events: list[dict] = []
    out = tmp_path_factory.mktemp("awq") / "tiny-v1-awq"
    result = run_quantize_job(tiny_v1, out, SPEC, backend="autoawq", timeout_s=900, max_memory_gb=8,
                              on_progress=events.append)
    return result, events


@pytest.fixture(scope="module")
def report(tiny_v1: Path, awq_job) -> QualityReport:
    job, _ = awq_job
    return quality_report(tiny_v1, job.build_dir, quantization_seconds=job.seconds, peak_memory_mb=job.peak_memory_mb)


def test_build_is_an_awq_checkpoint_with_tokenizer(awq_job) -> None:
    job, events = awq_job
    config = json.loads((job.build_dir / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "awq"
    assert config["quantization_config"]["group_size"] == 128 and config["quantization_config"]["bits"] == 4
    assert (job.build_dir / "tokenizer.json").is_file() and (job.build_dir / "chat_template.jinja").is_file()
    done = [e["layer"] for e in events if e["event"] == "layer_done" and e["stage"] == "awq"]
    assert done == [0, 1]  # one progress event per decoder layer
    assert job.peak_memory_mb > 100 and job.seconds > 0


def test_report_figures_are_finite_and_sane(report: QualityReport) -> None:
    values = [v for v in report.to_dict().values() if isinstance(v, float)]
    assert values and all(math.isfinite(v) for v in values)
    assert 1.0 < report.parent_perplexity < 50  # trained: far below the vocabulary size
    assert abs(report.perplexity_increase_pct) < 10
    assert report.parent_accuracy > 0.05  # the tiny model answers some questions it was trained on


def test_quantized_layers_are_about_4x_smaller(report: QualityReport) -> None:
    assert 3.5 < 1 / report.weight_size_ratio < 4.1


def test_corrupted_scales_fail_the_gate(tiny_v1: Path, awq_job, tmp_path: Path) -> None:
    job, _ = awq_job
    broken = tmp_path / "broken"
    shutil.copytree(job.build_dir, broken)
    state = load_file(str(broken / "model.safetensors"))
    gen = torch.Generator().manual_seed(0)
    for key in [k for k in state if k.endswith(".scales")]:
        state[key] = state[key] * (1 + 4 * torch.rand(state[key].shape, generator=gen)).half()
    save_file(state, str(broken / "model.safetensors"), metadata={"format": "pt"})
    bad = quality_report(tiny_v1, broken)
    ok, reason = check_gate(bad, QualityGate())
    assert not ok
    assert "perplexity increase over limit" in reason and f"{bad.perplexity_increase_pct:+.2f}%" in reason


def test_run_is_logged_to_mlflow(report: QualityReport, awq_job, tmp_path: Path, monkeypatch) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # a sqlite tracking store puts artifacts in ./mlruns

    from quantize.mlflow_log import log_quantization_run

    job, _ = awq_job
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = log_quantization_run(uri, report, job, job.build_dir)
    run = MlflowClient(uri).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["backend"] == "autoawq" and run.data.params["spec.group_size"] == "128"
    assert run.data.tags["relctl.quality.quant_method"] == "awq"
    assert math.isclose(run.data.metrics["perplexity_increase_pct"], report.perplexity_increase_pct, rel_tol=1e-6)
    files = {f.path for f in MlflowClient(uri).list_artifacts(run_id, "quantization")}
    assert files == {"quantization/quantize.log", "quantization/quality_report.json",
                     "quantization/quantize_result.json"}
