"""Scoring a model through an OpenAI-compatible vLLM server (the GPU-pool path).

The build is measured as users will get it: vLLM's own kernels serve the packed weights.
Perplexity uses vLLM's `prompt_logprobs` extension on token-ID prompts, so the windows are
exactly those the in-process scorer sees; answers are greedy completions.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from quantize.errors import QuantizeError


@dataclass(frozen=True)
class ServedPair:
    """The parent and the build, each behind an OpenAI-compatible vLLM server."""
    parent_url: str
    build_url: str
    model: str               # the served model name on both servers
    where: str               # e.g. "pool gpu-a"


class ServedScorer:
    def __init__(self, url: str, model: str, *, timeout_s: float = 300.0, parallel: int = 4, batch: int = 32):
        self.url, self.model, self.parallel, self.batch = url.rstrip("/"), model, parallel, batch
        self._http = httpx.Client(timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def _complete(self, body: dict) -> dict:
        try:
            resp = self._http.post(f"{self.url}/v1/completions", json={"model": self.model, **body})
        except httpx.HTTPError as exc:
            raise QuantizeError(f"evaluation server {self.url} unreachable: {exc}", cause="evaluation") from exc
        if resp.status_code != 200:
            raise QuantizeError(f"evaluation server {self.url} answered HTTP {resp.status_code}: "
                                f"{resp.text[:300]}", cause="evaluation")
        return resp.json()

    def window_nll(self, window: list[int]) -> float:
        doc = self._complete({"prompt": window, "max_tokens": 1, "temperature": 0.0, "prompt_logprobs": 0})
        per_position = doc["choices"][0].get("prompt_logprobs")
        if not per_position or len(per_position) != len(window):
            raise QuantizeError(f"evaluation server {self.url} returned no prompt_logprobs for a "
                                f"{len(window)}-token window (is it vLLM?)", cause="evaluation")
        nll = 0.0
        for token, entry in zip(window[1:], per_position[1:]):   # the first token has no context
            logprob = entry.get(str(token), {}).get("logprob") if isinstance(entry, dict) else None
            if logprob is None or not math.isfinite(logprob):
                raise QuantizeError(f"evaluation server {self.url}: no finite logprob for prompt token {token}",
                                    cause="evaluation")
            nll -= logprob
        return nll

    def answers(self, prompts: list[str], max_new_tokens: int) -> list[str]:
        """Greedy completions: `batch` prompts per request (a list prompt; choices carry their index),
        `parallel` requests at once, so thousands of items cost little HTTP overhead."""
        def some(chunk: list[str]) -> list[str]:
            doc = self._complete({"prompt": chunk, "max_tokens": max_new_tokens, "temperature": 0.0})
            choices = sorted(doc.get("choices") or [], key=lambda c: c.get("index", 0))
            if len(choices) != len(chunk):
                raise QuantizeError(f"evaluation server {self.url} answered {len(choices)} choices for "
                                    f"{len(chunk)} prompts", cause="evaluation")
            return [c.get("text", "") for c in choices]
        chunks = [prompts[i:i + self.batch] for i in range(0, len(prompts), self.batch)]
        with ThreadPoolExecutor(self.parallel) as workers:   # vLLM batches concurrent requests too
            return [text for texts in workers.map(some, chunks) for text in texts]
