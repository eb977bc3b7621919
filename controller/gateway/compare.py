"""Comparing the two answers of a mirrored pair (pure functions, no I/O)."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_SPACE = re.compile(r"\s+")
_EDGE_PUNCT = re.compile(r"^[\W_]+|[\W_]+$")


def normalize(text: str) -> str:
    """Case, Unicode form, whitespace and edge punctuation do not count as disagreement."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _EDGE_PUNCT.sub("", _SPACE.sub(" ", text).strip())


@dataclass(frozen=True)
class Side:
    ok: bool
    status: int
    latency_s: float
    text: str | None
    completion_tokens: int | None


@dataclass(frozen=True)
class PairResult:
    outcome: str                   # both_ok | both_failed | only_candidate_failed | only_stable_failed
    exact: bool
    normalized: bool
    candidate_slower: bool
    status_differs: bool
    latency_delta_s: float         # candidate minus stable
    token_delta: int | None        # candidate minus stable completion tokens


def compare(stable: Side, candidate: Side) -> PairResult:
    if stable.ok and candidate.ok:
        outcome = "both_ok"
    elif not stable.ok and not candidate.ok:
        outcome = "both_failed"
    else:
        outcome = "only_candidate_failed" if stable.ok else "only_stable_failed"
    both_ok = outcome == "both_ok"
    same_text = both_ok and stable.text is not None and stable.text == candidate.text
    same_norm = both_ok and stable.text is not None and candidate.text is not None and (
        same_text or normalize(stable.text) == normalize(candidate.text))
    tokens = None
    if stable.completion_tokens is not None and candidate.completion_tokens is not None:
        tokens = candidate.completion_tokens - stable.completion_tokens
    return PairResult(
        outcome=outcome, exact=same_text, normalized=same_norm,
        candidate_slower=both_ok and candidate.latency_s > stable.latency_s,
        status_differs=stable.status != candidate.status,
        latency_delta_s=candidate.latency_s - stable.latency_s, token_delta=tokens,
    )
