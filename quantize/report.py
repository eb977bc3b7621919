"""The quality report: what quantization cost, measured against the full-precision parent.

Perplexity on held-out text, accuracy on the evaluation JSONL (greedy generation, normalized
exact match), and the size of the quantized layers. accuracy_drop_pct is in percentage
points (parent accuracy minus build accuracy, times 100); negative means the build did better.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer

from quantize import data_files
from quantize.data_files import EvalItem, load_eval_set
from quantize.dequant import load_build_model, load_fp_model, packed_layer_bytes

PPL_WINDOW = 256
MAX_NEW_TOKENS = 8


@dataclass(frozen=True)
class QualityReport:
    parent_perplexity: float
    build_perplexity: float
    perplexity_increase_pct: float
    parent_accuracy: float
    build_accuracy: float
    accuracy_drop_pct: float
    eval_items: int
    heldout_tokens: int
    parent_layers_bytes_fp16: int   # the quantized layers' weights at 16 bits (what AWQ replaces)
    build_layers_bytes: int         # the same layers packed: qweight + qzeros + scales
    weight_size_ratio: float        # build_layers_bytes / parent_layers_bytes_fp16 (~0.26 for w4 g128)
    quantization_seconds: float | None = None
    peak_memory_mb: float | None = None
    quant_method: str = "awq"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def as_tags(self, prefix: str = "relctl.quality.") -> dict[str, str]:
        """MLflow tag strings (tags are strings; floats rounded so they read well in the UI)."""
        return {f"{prefix}{k}": _tag_value(v) for k, v in self.to_dict().items() if v is not None}

    def metrics(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.to_dict().items() if isinstance(v, (int, float)) and v is not None}


def _tag_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def perplexity(model: torch.nn.Module, tokenizer, texts: list[str], window: int = PPL_WINDOW) -> tuple[float, int]:
    """exp(mean token NLL) over non-overlapping windows of the texts framed as in training."""
    ids: list[int] = []
    for enc in tokenizer(texts, add_special_tokens=True)["input_ids"]:
        ids.extend(enc + [tokenizer.eos_token_id])
    stream = torch.tensor(ids, dtype=torch.long)
    total_nll, total_tokens = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(stream) - 1, window):
            chunk = stream[start:start + window + 1]
            if len(chunk) < 2:
                break
            logits = model(input_ids=chunk[None, :-1]).logits[0]
            nll = torch.nn.functional.cross_entropy(logits.float(), chunk[1:], reduction="sum")
            total_nll += nll.item()
            total_tokens += len(chunk) - 1
    if total_tokens == 0:
        raise ValueError("held-out text is empty")
    return math.exp(total_nll / total_tokens), total_tokens


def normalize(text: str) -> str:
    """First line, lower case, no punctuation or surrounding space: ' Paris.\\n' -> 'paris'."""
    first = text.strip().split("\n")[0]
    return re.sub(r"[^\w\s]", "", first).strip().lower()


def accuracy(model: torch.nn.Module, tokenizer, items: list[EvalItem], batch_size: int = 32) -> float:
    """Greedy answers, generated in left-padded batches (one generate call per batch is far faster)."""
    correct = 0
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        with torch.inference_mode():
            for start in range(0, len(items), batch_size):
                batch = items[start:start + batch_size]
                enc = tokenizer([it.prompt for it in batch], return_tensors="pt", padding=True)
                out = model.generate(**enc, max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
                                     pad_token_id=tokenizer.pad_token_id)
                answers = tokenizer.batch_decode(out[:, enc.input_ids.shape[1]:], skip_special_tokens=True)
                correct += sum(normalize(a) == normalize(it.answer) for a, it in zip(answers, batch))
    finally:
        tokenizer.padding_side = side
    return correct / len(items)


def _pct_increase(parent: float, build: float) -> float:
    return (build - parent) / parent * 100.0


def quality_report(parent_dir: Path, build_dir: Path, *, heldout_texts: list[str] | None = None,
                   eval_set: list[EvalItem] | Path | None = None, quantization_seconds: float | None = None,
                   peak_memory_mb: float | None = None) -> QualityReport:
    texts = heldout_texts if heldout_texts is not None else data_files.heldout_texts()
    items = eval_set if isinstance(eval_set, list) else load_eval_set(eval_set)
    tokenizer = AutoTokenizer.from_pretrained(str(parent_dir))
    parent = load_fp_model(parent_dir)
    parent_ppl, n_tokens = perplexity(parent, tokenizer, texts)
    parent_acc = accuracy(parent, tokenizer, items)
    del parent
    build = load_build_model(build_dir)
    build_ppl, _ = perplexity(build, tokenizer, texts)
    build_acc = accuracy(build, tokenizer, items)
    packed, elements = packed_layer_bytes(build_dir)
    method = json.loads((Path(build_dir) / "config.json").read_text())["quantization_config"]["quant_method"]
    return QualityReport(
        parent_perplexity=parent_ppl, build_perplexity=build_ppl,
        perplexity_increase_pct=_pct_increase(parent_ppl, build_ppl),
        parent_accuracy=parent_acc, build_accuracy=build_acc, accuracy_drop_pct=(parent_acc - build_acc) * 100.0,
        eval_items=len(items), heldout_tokens=n_tokens, parent_layers_bytes_fp16=elements * 2,
        build_layers_bytes=packed, weight_size_ratio=packed / (elements * 2) if elements else float("nan"),
        quantization_seconds=quantization_seconds, peak_memory_mb=peak_memory_mb, quant_method=method,
    )
