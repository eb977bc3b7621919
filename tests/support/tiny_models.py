"""Tiny models for tests: built once per test session (or reused across sessions).

Set RELCTL_TINY_CACHE to a folder to keep built models between runs (CI caches it);
otherwise they live in pytest's per-session temp dir. Import the fixtures you need:
    from tests.support.tiny_models import tiny_cache, tiny_v1  # noqa: F401
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from quantize.tiny_model import cached_tiny_llama, make_config, train_tokenizer

TINY_V1 = {"train_steps": 200, "seed": 0}
TINY_V2_STEPS = 100


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = os.environ.get("RELCTL_TINY_CACHE")
    if env:
        Path(env).mkdir(parents=True, exist_ok=True)
        return Path(env)
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="session")
def tiny_v1(tiny_cache: Path) -> Path:
    """The base model (v1): tokenizer + 200 training steps."""
    return cached_tiny_llama(tiny_cache, "tiny-v1", **TINY_V1)


@pytest.fixture(scope="session")
def tiny_v2(tiny_cache: Path, tiny_v1: Path) -> Path:
    """v1 trained further (the demo's candidate)."""
    return cached_tiny_llama(tiny_cache, "tiny-v2", train_steps=TINY_V2_STEPS, init_from=tiny_v1, seed=1)


def write_untrained_checkpoint(out_dir: Path, *, hidden_size: int = 256, intermediate_size: int = 512,
                               model_type: str = "llama", docs: list[str] | None = None) -> Path:
    """A structurally valid, untrained checkpoint in well under a second (for validation tests)."""
    docs = docs or [f"sentence number {i} about apples and pears." for i in range(50)]
    tokenizer = train_tokenizer(docs, vocab_size=320)
    config = make_config(tokenizer, hidden_size, intermediate_size, num_layers=1)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(out_dir))
    (out_dir / "config.json").write_text(json.dumps({**config.to_dict(), "model_type": model_type}))
    save_file({"model.embed_tokens.weight": torch.zeros(config.vocab_size, hidden_size)},
              str(out_dir / "model.safetensors"))
    return out_dir
