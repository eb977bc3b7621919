"""The quality report measured through REAL vLLM servers on the local pool.

Where this CPU has vLLM's 4-bit kernel (AVX-512), the pool serves the AWQ build itself and
the report is computed through it (what a GPU pool does); elsewhere the pool must refuse the
build with its reason and the report falls back to CPU. Either way the served scorer must
agree with the in-process scorer on the full-precision parent.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
from controller.pools.local_vllm import cpu_dtype
from controller.reconcile.evaluation_servers import evaluation_target, served_pair, wait_ready
from quantize.base import QuantizeSpec
from quantize.dequant import load_fp_model
from quantize.errors import QuantizeError
from quantize.job import run_quantize_job
from quantize.report import MAX_NEW_TOKENS, normalize, perplexity, quality_report, token_windows
from quantize.data_files import heldout_texts, load_eval_set
from quantize.scorer_served import ServedScorer
from quantize.scorer_torch import TorchScorer
from tests.support.pool import make_local_pool
from tests.support.tiny_models import tiny_cache, tiny_v1  # noqa: F401

pytest.importorskip("vllm")
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
MODEL = "tiny-eval"


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    p = make_local_pool(tmp_path_factory.mktemp("eval-pool"))
    yield p
    p.stop_all()


@pytest.fixture(scope="module")
def awq_build(tiny_v1: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval-build") / "build"
    return run_quantize_job(tiny_v1, out, QuantizeSpec(max_calib_samples=32, max_calib_seq_len=128),
                            backend="autoawq", timeout_s=900, max_memory_gb=16).build_dir


# The in-process scorer runs fp32; the pool runs fp32 too, or bf16 where it serves 4-bit builds.
EXACT = cpu_dtype() == "float32"
PPL_TOL = 1e-4 if EXACT else 0.02
SAME_ANSWERS = 0.95 if EXACT else 0.8


def _assert_served_matches_in_process(url: str, parent_dir: Path) -> None:
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(str(parent_dir))
    windows = token_windows(tokenizer, heldout_texts())[:8]
    items = load_eval_set(None)[:40]
    local = TorchScorer(load_fp_model(parent_dir), tokenizer)
    served = ServedScorer(url, MODEL)
    try:
        ppl_local, tokens = perplexity(local, windows)
        ppl_served, _ = perplexity(served, windows)
        assert tokens > 1000
        assert math.isclose(ppl_served, ppl_local, rel_tol=PPL_TOL), (ppl_served, ppl_local)
        prompts = [it.prompt for it in items]
        same = sum(normalize(a) == normalize(b) for a, b in zip(served.answers(prompts, MAX_NEW_TOKENS),
                                                                local.answers(prompts, MAX_NEW_TOKENS)))
        assert same >= SAME_ANSWERS * len(items), f"greedy answers agree on only {same} of {len(items)} prompts"
    finally:
        served.close()


def test_report_through_vllm_serving_the_awq_build(pool, tiny_v1, awq_build):
    ok, why = pool.can_serve("awq")
    if not ok:   # an AVX2-only CPU: the refusal and the fallback are what there is to check
        assert "AVX-512" in why
        assert evaluation_target("auto", pool.name, (ok, why)) == "cpu"
        with pytest.raises(QuantizeError, match="cannot serve the build"):
            evaluation_target("pool", pool.name, (ok, why))
        pool.ensure(MODEL, "parent", tiny_v1)
        _assert_served_matches_in_process(wait_ready(pool, MODEL, "parent", 600), tiny_v1)
        return
    with served_pair(pool, MODEL, "rel-e2e", tiny_v1, awq_build, timeout_s=600) as pair:
        _assert_served_matches_in_process(pair.parent_url, tiny_v1)
        served = quality_report(tiny_v1, awq_build, served=pair)
    assert pool.status(MODEL, "rel-e2e-eval-parent") is None and pool.status(MODEL, "rel-e2e-eval-build") is None
    cpu = quality_report(tiny_v1, awq_build)
    assert served.evaluated_on == f"vllm (pool {pool.name})" and cpu.evaluated_on == "cpu (dequantized)"
    print("served", served.to_dict(), "\ncpu", cpu.to_dict())
    assert math.isclose(served.parent_perplexity, cpu.parent_perplexity, rel_tol=PPL_TOL)
    # vLLM runs the packed 4-bit weights with bf16 activations; the CPU path runs them dequantized in fp32
    assert math.isclose(served.build_perplexity, cpu.build_perplexity, rel_tol=0.02)
    assert served.build_perplexity != served.parent_perplexity
    # both measure the same quantization loss when parent and build share an activation dtype
    assert abs(served.perplexity_increase_pct - cpu.perplexity_increase_pct) < 1.0
    assert abs(served.perplexity_increase_pct) < 5 and abs(served.accuracy_drop_pct) <= 10
    assert served.weight_size_ratio == pytest.approx(0.26, abs=0.01)
