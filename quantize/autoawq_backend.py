"""AutoAWQ 0.2.9 backend: activation-aware 4-bit weight quantization of Llama-family models.

Runs on CPU here (tiny model: seconds). calib_data is always a list of texts: AutoAWQ's
default downloads a dataset from a hub, which fails offline.
"""
from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

from quantize.base import Progress, QuantizeResult, QuantizeSpec
from quantize.errors import QuantizeError

# model_type values AutoAWQ 0.2.9 knows (awq.models.auto.AWQ_CAUSAL_LM_MODEL_MAP), copied so
# the pre-spawn check does not import torch.
SUPPORTED_MODEL_TYPES = frozenset({
    "mpt", "llama", "opt", "exaone", "falcon", "bloom", "gptj", "gpt_bigcode", "mistral", "mixtral",
    "gpt_neox", "aquila", "qwen", "baichuan", "llava", "qwen2", "qwen3", "qwen3_moe", "gemma", "gemma2",
    "stablelm", "starcoder2", "llava_next", "phi3", "phi3_v", "cohere", "deepseek_v2", "deepseek_v3",
    "minicpm", "internlm2", "minicpm3", "qwen2_vl", "qwen2_5_vl", "qwen2_5_omni",
})
KERNELS = ("GEMM", "GEMV")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "tokenizer.model")


class AutoAWQQuantizer:
    name = "autoawq"

    def check(self, config: dict[str, Any], spec: QuantizeSpec) -> None:
        model_type = config.get("model_type")
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise QuantizeError(f"unsupported architecture {model_type!r} for AutoAWQ "
                                f"(supported: llama, mistral, qwen2, ...)", cause="architecture")
        if spec.bits != 4:
            raise QuantizeError(f"AutoAWQ packs 4-bit weights only, got bits={spec.bits}", cause="spec")
        if spec.kernel not in KERNELS:
            raise QuantizeError(f"unknown AutoAWQ kernel {spec.kernel!r}; known: {', '.join(KERNELS)}", cause="spec")

    def quantize(self, parent_dir: Path, out_dir: Path, spec: QuantizeSpec, texts: list[str],
                 progress: Progress) -> QuantizeResult:
        from awq import AutoAWQForCausalLM
        from transformers import AutoTokenizer

        started = time.monotonic()
        tokenizer = AutoTokenizer.from_pretrained(str(parent_dir))
        model = AutoAWQForCausalLM.from_pretrained(str(parent_dir))
        quant_config = {"zero_point": spec.zero_point, "q_group_size": spec.group_size, "w_bit": spec.bits,
                        "version": spec.kernel}
        with _layer_progress(progress):
            model.quantize(tokenizer, quant_config=quant_config, calib_data=texts,
                           max_calib_samples=spec.max_calib_samples, max_calib_seq_len=spec.max_calib_seq_len)
        model.save_quantized(str(out_dir))
        copy_tokenizer(parent_dir, out_dir)
        layers = len(model.model.model.layers)
        return QuantizeResult(build_dir=out_dir, backend=self.name, spec=spec, quant_method="awq", layers=layers,
                              seconds=round(time.monotonic() - started, 3))


def copy_tokenizer(parent_dir: Path, out_dir: Path) -> None:
    """save_quantized writes weights and config only; a servable folder needs the tokenizer too."""
    for name in TOKENIZER_FILES:
        if (Path(parent_dir) / name).is_file():
            shutil.copy2(Path(parent_dir) / name, Path(out_dir) / name)


@contextlib.contextmanager
def _layer_progress(progress: Progress) -> Iterator[None]:
    """AutoAWQ reports layers only through tqdm; swap its tqdm for one that also emits events."""
    import awq.quantize.quantizer as awq_quantizer

    original = awq_quantizer.tqdm

    def reporting(iterable, desc: str = "", **_: Any):
        items = list(iterable)
        stage = desc.lower() or "layers"
        for i in items:
            progress({"event": "layer_start", "stage": stage, "layer": i, "total": len(items)})
            yield i
            progress({"event": "layer_done", "stage": stage, "layer": i, "total": len(items)})

    awq_quantizer.tqdm = reporting
    try:
        yield
    finally:
        awq_quantizer.tqdm = original
