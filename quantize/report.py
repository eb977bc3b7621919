"""The quality report: what quantization cost, measured against the full-precision parent.

Perplexity on held-out text, accuracy on an evaluation suite (quantize/suites.py: greedy
generation, each answer checked by its item's rule), and the size of the quantized layers.
accuracy_drop_pct is in percentage points (parent accuracy minus build accuracy, times 100);
negative means the build did better. Both models answer the same items, and the report keeps
the paired counts (answers lost and gained) that the gate's exact interval needs.
"""
from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from transformers import AutoTokenizer

from quantize import data_files
from quantize.data_files import EvalItem
from quantize.dequant import load_build_model, load_fp_model, packed_layer_bytes, quant_config
from quantize.scorer_served import ServedPair, ServedScorer
from quantize.scorer_torch import TorchScorer
from quantize.suites import Suite, SuiteItem, load_suite, normalize  # noqa: F401  (normalize: re-exported)

PPL_WINDOW = 256
MAX_NEW_TOKENS = 8
# Items per answers() call: progress is counted between calls. A multiple of both scorers' batches
# (TorchScorer 64, ServedScorer 32 x 4 parallel), so a chunk of length-sorted prompts gives exactly
# the batches one call for all items would.
ANSWER_CHUNK = 256
Progress = Callable[[int, int], None]      # (done, total)


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
    parent_only_correct: int | None = None    # items the parent answered right and the build wrong
    build_only_correct: int | None = None     # the other way round; None in reports from before pairing
    suite: str = ""                           # the suite's name (not kept in the numeric tags)

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


def perplexity(scorer: Scorer, windows: list[list[int]],
               on_done: Callable[[int], None] | None = None) -> tuple[float, int]:
    """exp(mean token NLL) over the windows; `on_done(1)` after each window."""
    tokens = sum(len(w) - 1 for w in windows)
    if tokens == 0:
        raise ValueError("held-out text is empty")
    nll = 0.0
    for w in windows:
        nll += scorer.window_nll(w)
        if on_done:
            on_done(1)
    return math.exp(nll / tokens), tokens


def correct(scorer: Scorer, items: tuple[SuiteItem, ...],
            on_done: Callable[[int], None] | None = None) -> list[bool]:
    """Each item's answer checked by its rule; items asking the same number of tokens go together,
    shortest prompts first, ANSWER_CHUNK at a time (`on_done(n)` after each chunk)."""
    out = [False] * len(items)
    for max_tokens in sorted({it.max_tokens for it in items}):
        group = sorted((i for i, it in enumerate(items) if it.max_tokens == max_tokens),
                       key=lambda i: len(items[i].prompt))
        for start in range(0, len(group), ANSWER_CHUNK):
            idx = group[start:start + ANSWER_CHUNK]
            answers = scorer.answers([items[i].prompt for i in idx], max_tokens)
            for i, answer in zip(idx, answers):
                out[i] = bool(items[i].check(answer))
            if on_done:
                on_done(len(idx))
    return out


def accuracy(scorer: Scorer, items) -> float:
    marks = correct(scorer, _as_suite(items).items)
    return sum(marks) / len(marks)


def _scores(scorer: Scorer, windows: list[list[int]], suite: Suite,
            on_done: Callable[[int], None] | None = None) -> tuple[float, int, list[bool]]:
    ppl, tokens = perplexity(scorer, windows, on_done)
    return ppl, tokens, correct(scorer, suite.items, on_done)


def _counter(total: int, on_progress: Progress | None) -> Callable[[int], None] | None:
    """Adds up what was scored and reports (done, total); reports (0, total) at once."""
    if on_progress is None:
        return None
    done, lock = [0], threading.Lock()     # parent and build may be scored in two threads

    def add(n: int) -> None:
        with lock:
            done[0] += n
            on_progress(done[0], total)
    on_progress(0, total)
    return add


def _as_suite(eval_set) -> Suite:
    """A Suite from a Suite, a built-in name or path, None (builtin:small) or a list of EvalItems."""
    if isinstance(eval_set, Suite):
        return eval_set
    if isinstance(eval_set, list):
        items = tuple(SuiteItem(it.prompt, (lambda out, want=it.answer: normalize(out) == normalize(want)), it.answer)
                      if isinstance(it, EvalItem) else it for it in eval_set)
        return Suite("items", items)
    return load_suite(eval_set)


def _pct_increase(parent: float, build: float) -> float:
    return (build - parent) / parent * 100.0


def quality_report(parent_dir: Path, build_dir: Path, *, heldout_texts: list[str] | None = None,
                   eval_set: Suite | list[EvalItem] | str | Path | None = None,
                   quantization_seconds: float | None = None, peak_memory_mb: float | None = None,
                   served: ServedPair | None = None, on_progress: Progress | None = None) -> QualityReport:
    """Measure parent and build on the same windows and items: in this process with the build's
    weights dequantized (CPU), or, with `served`, through the vLLM servers running them.
    eval_set: the policy's `quality.suite` (a built-in name or a JSONL path); builtin:small when None.
    on_progress(done, total): perplexity windows and suite items scored, parent's and build's together
    (called per window and per ANSWER_CHUNK items: throttle it before it writes anywhere)."""
    texts = heldout_texts if heldout_texts is not None else data_files.heldout_texts()
    suite = _as_suite(eval_set)
    tokenizer = AutoTokenizer.from_pretrained(str(parent_dir))
    windows = token_windows(tokenizer, texts)
    add = _counter(2 * (len(windows) + len(suite.items)), on_progress)
    if served is None:   # one model in memory at a time
        parent = _scores(TorchScorer(load_fp_model(parent_dir), tokenizer), windows, suite, add)
        build = _scores(TorchScorer(load_build_model(build_dir), tokenizer), windows, suite, add)
    else:   # each model has a server (and a core) of its own: both are scored at once
        def served_scores(url: str) -> tuple[float, int, list[bool]]:
            with closing(ServedScorer(url, served.model)) as scorer:
                return _scores(scorer, windows, suite, add)
        with ThreadPoolExecutor(2, thread_name_prefix="score") as both:
            parent_run, build_run = both.submit(served_scores, served.parent_url), \
                both.submit(served_scores, served.build_url)
            parent, build = parent_run.result(), build_run.result()
    (parent_ppl, n_tokens, parent_marks), (build_ppl, _, build_marks) = parent, build
    n = len(parent_marks)
    parent_acc, build_acc = sum(parent_marks) / n, sum(build_marks) / n
    lost = sum(p and not b for p, b in zip(parent_marks, build_marks))
    gained = sum(b and not p for p, b in zip(parent_marks, build_marks))
    packed, elements = packed_layer_bytes(build_dir)
    method = quant_config(build_dir)["quant_method"]
    return QualityReport(
        parent_perplexity=parent_ppl, build_perplexity=build_ppl,
        perplexity_increase_pct=_pct_increase(parent_ppl, build_ppl),
        parent_accuracy=parent_acc, build_accuracy=build_acc, accuracy_drop_pct=(parent_acc - build_acc) * 100.0,
        eval_items=n, heldout_tokens=n_tokens, parent_layers_bytes_fp16=elements * 2,
        build_layers_bytes=packed, weight_size_ratio=packed / (elements * 2) if elements else float("nan"),
        quantization_seconds=quantization_seconds, peak_memory_mb=peak_memory_mb, quant_method=method,
        evaluated_on="cpu (dequantized)" if served is None else f"vllm ({served.where})",
        parent_only_correct=lost, build_only_correct=gained, suite=suite.name,
    )
