"""Cheap checks on a checkpoint folder, run before any quantization process is spawned.

They read only config.json and the safetensors headers, so a missing, truncated or
mislabelled checkpoint fails in milliseconds with a message that names the cause.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from quantize.errors import QuantizeError

_MAX_HEADER = 100 * 1024 * 1024


def read_config(model_dir: Path) -> dict[str, Any]:
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise QuantizeError(f"checkpoint folder not found: {model_dir}", cause="checkpoint")
    path = model_dir / "config.json"
    if not path.is_file():
        raise QuantizeError(f"checkpoint {model_dir} has no config.json", cause="checkpoint")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise QuantizeError(f"checkpoint {model_dir}: config.json is corrupt ({exc})", cause="checkpoint") from exc
    if not isinstance(config, dict) or "model_type" not in config:
        raise QuantizeError(f"checkpoint {model_dir}: config.json has no model_type", cause="checkpoint")
    return config


def check_weights(model_dir: Path) -> list[Path]:
    """Every safetensors file must have a readable header whose tensors fit inside the file."""
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        if list(Path(model_dir).glob("pytorch_model*.bin")):
            return sorted(Path(model_dir).glob("pytorch_model*.bin"))
        raise QuantizeError(f"checkpoint {model_dir} has no weight files (*.safetensors)", cause="checkpoint")
    for path in files:
        _check_safetensors(path)
    return files


def _check_safetensors(path: Path) -> None:
    size = path.stat().st_size
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            raise QuantizeError(f"weight file {path.name} is truncated ({size} bytes)", cause="checkpoint")
        (header_len,) = struct.unpack("<Q", raw)
        if header_len > min(size - 8, _MAX_HEADER):
            raise QuantizeError(f"weight file {path.name} is corrupt: bad header length", cause="checkpoint")
        try:
            header = json.loads(fh.read(header_len))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise QuantizeError(f"weight file {path.name} is corrupt: unreadable header", cause="checkpoint") from exc
    ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"]
    if not ends:
        raise QuantizeError(f"weight file {path.name} holds no tensors", cause="checkpoint")
    if 8 + header_len + max(ends) > size:
        raise QuantizeError(f"weight file {path.name} is truncated: tensors end past the file's {size} bytes",
                            cause="checkpoint")


def linear_dims(config: dict[str, Any]) -> dict[str, int]:
    """Input/output sizes of a decoder layer's linear projections, from a Llama-style config."""
    try:
        hidden = int(config["hidden_size"])
        inter = int(config["intermediate_size"])
        heads = int(config["num_attention_heads"])
    except (KeyError, TypeError, ValueError) as exc:
        raise QuantizeError(f"config.json lacks a size field needed for quantization: {exc}",
                            cause="checkpoint") from exc
    head_dim = int(config.get("head_dim") or hidden // heads)
    kv_heads = int(config.get("num_key_value_heads") or heads)
    return {"hidden_size": hidden, "intermediate_size": inter, "q_proj_out": heads * head_dim,
            "kv_proj_out": kv_heads * head_dim}


def check_group_size(config: dict[str, Any], group_size: int) -> None:
    # Each weight's input dimension is split into groups, so every in-dim must divide evenly.
    dims = linear_dims(config)
    bad = {k: v for k, v in dims.items() if v % group_size}
    if bad:
        listed = ", ".join(f"{k}={v}" for k, v in bad.items())
        raise QuantizeError(f"dimensions not divisible by group size {group_size}: {listed}", cause="group_size")
