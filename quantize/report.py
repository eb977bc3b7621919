"""The quality report: what quantization cost, measured against the full-precision parent.

Perplexity on held-out text, accuracy on the evaluation JSONL (greedy generation, normalized
exact match), and the size of the quantized layers. accuracy_drop_pct is in percentage
points (parent accuracy minus build accuracy, times 100); negative means the build did better.
"""
from __future__ import annotations

import math
import re
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from transformers import AutoTokenizer

from quantize import data_files
from quantize.data_files import EvalItem, load_eval_set
from quantize.dequant import load_build_model, load_fp_model, packed_layer_bytes, quant_config
from quantize.scorer_served import ServedPair, ServedScorer
from quantize.scorer_torch import TorchScorer

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
    evaluated_on: str = "cpu (dequantized)"   # or "vllm (<where>)": how the build was run

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


class Scorer(Protocol):
    """One model under evaluation: in this process (TorchScorer) or behind vLLM (ServedScorer)."""

    def window_nll(self, window: list[int]) -> float:
        """Sum of -log p(token | earlier tokens of the window) over window[1:]."""

    def answers(self, prompts: list[str], max_new_tokens: int) -> list[str]:
        """Greedy completions, one per prompt."""


def token_windows(tokenizer, texts: list[str], window: int = PPL_WINDOW) -> list[list[int]]:
    """The texts framed as in training (EOS between them), cut into non-overlapping windows of
    window+1 tokens (each predicts its last `window` tokens)."""
    ids: list[int] = []
    for enc in tokenizer(texts, add_special_tokens=True)["input_ids"]:
        ids.extend(enc + [tokenizer.eos_token_id])
    windows = [ids[start:start + window + 1] for start in range(0, len(ids) - 1, window)]
    return [w for w in windows if len(w) >= 2]


def perplexity(scorer: Scorer, windows: list[list[int]]) -> tuple[float, int]:
    """exp(mean token NLL) over the windows."""
    tokens = sum(len(w) - 1 for w in windows)
    if tokens == 0:
        raise ValueError("held-out text is empty")
    return math.exp(sum(scorer.window_nll(w) for w in windows) / tokens), tokens


def normalize(text: str) -> str:
    """First line, lower case, no punctuation or surrounding space: ' Paris.\\n' -> 'paris'."""
    first = text.strip().split("\n")[0]
    return re.sub(r"[^\w\s]", "", first).strip().lower()


def accuracy(scorer: Scorer, items: list[EvalItem]) -> float:
    answers = scorer.answers([it.prompt for it in items], MAX_NEW_TOKENS)
    return sum(normalize(a) == normalize(it.answer) for a, it in zip(answers, items)) / len(items)


def _scores(scorer: Scorer, windows: list[list[int]], items: list[EvalItem]) -> tuple[float, int, float]:
    ppl, tokens = perplexity(scorer, windows)
    return ppl, tokens, accuracy(scorer, items)


def _pct_increase(parent: float, build: float) -> float:
    return (build - parent) / parent * 100.0


def quality_report(parent_dir: Path, build_dir: Path, *, heldout_texts: list[str] | None = None,
                   eval_set: list[EvalItem] | Path | None = None, quantization_seconds: float | None = None,
                   peak_memory_mb: float | None = None, served: ServedPair | None = None) -> QualityReport:
    """Measure parent and build on the same windows and items: in this process with the build's
    weights dequantized (CPU), or, with `served`, through the vLLM servers running them."""
    texts = heldout_texts if heldout_texts is not None else data_files.heldout_texts()
    items = eval_set if isinstance(eval_set, list) else load_eval_set(eval_set)
    tokenizer = AutoTokenizer.from_pretrained(str(parent_dir))
    windows = token_windows(tokenizer, texts)
    if served is None:   # one model in memory at a time
        parent = _scores(TorchScorer(load_fp_model(parent_dir), tokenizer), windows, items)
        build = _scores(TorchScorer(load_build_model(build_dir), tokenizer), windows, items)
    else:
        with closing(ServedScorer(served.parent_url, served.model)) as scorer:
            parent = _scores(scorer, windows, items)
        with closing(ServedScorer(served.build_url, served.model)) as scorer:
            build = _scores(scorer, windows, items)
    (parent_ppl, n_tokens, parent_acc), (build_ppl, _, build_acc) = parent, build
    packed, elements = packed_layer_bytes(build_dir)
    method = quant_config(build_dir)["quant_method"]
    return QualityReport(
        parent_perplexity=parent_ppl, build_perplexity=build_ppl,
        perplexity_increase_pct=_pct_increase(parent_ppl, build_ppl),
        parent_accuracy=parent_acc, build_accuracy=build_acc, accuracy_drop_pct=(parent_acc - build_acc) * 100.0,
        eval_items=len(items), heldout_tokens=n_tokens, parent_layers_bytes_fp16=elements * 2,
        build_layers_bytes=packed, weight_size_ratio=packed / (elements * 2) if elements else float("nan"),
        quantization_seconds=quantization_seconds, peak_memory_mb=peak_memory_mb, quant_method=method,
        evaluated_on="cpu (dequantized)" if served is None else f"vllm ({served.where})",
    )
