"""A checkpoint made worse on purpose: a copy whose linear weights carry strong Gaussian noise.

Same config, tokenizer and tensor shapes as its source (it loads and serves like the original),
but it answers worse: what a corrupted or mis-built artifact looks like to the serving stack.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def perturb_checkpoint(src: Path, dest: Path, *, noise: float = 1.0, seed: int = 0) -> Path:
    """Copy `src` to `dest` and add N(0, (noise * std of the tensor)^2) to every 2-D linear weight
    (attention and MLP projections, lm_head); embeddings and norms are left as they were."""
    shutil.copytree(src, dest)
    gen = torch.Generator().manual_seed(seed)
    for path in dest.glob("*.safetensors"):
        tensors = load_file(str(path))
        for name, w in tensors.items():
            if w.ndim == 2 and name.endswith(".weight") and "embed" not in name:
                tensors[name] = w + noise * w.float().std() * torch.randn(w.shape, generator=gen).to(w.dtype)
        save_file(tensors, str(path), metadata={"format": "pt"})
    return dest
