"""Loads a quantized build as a full-precision model on CPU, for evaluation.

vLLM's CPU build has no 4-bit AWQ kernel on this CPU and transformers needs IPEX to run
AWQ on CPU, so the packed 4-bit weights are unpacked (AutoAWQ's own packing utilities)
back into float weights: numerically the weights the GPU kernel would use.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM

from quantize.errors import QuantizeError

PACKED_SUFFIXES = (".qweight", ".qzeros", ".scales")


def load_fp_model(model_dir: Path) -> torch.nn.Module:
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    return model.eval()


def build_state_dict(build_dir: Path) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for path in sorted(Path(build_dir).glob("*.safetensors")):
        state.update(load_file(str(path)))
    if not state:
        raise QuantizeError(f"build {build_dir} has no safetensors weights", cause="checkpoint")
    return state


def quant_config(build_dir: Path) -> dict:
    config = json.loads((Path(build_dir) / "config.json").read_text())
    qc = config.get("quantization_config")
    if not qc:
        raise QuantizeError(f"{build_dir} is not a quantized build (no quantization_config)", cause="checkpoint")
    return qc


def dequantize_awq_state(state: dict[str, torch.Tensor], bits: int, group_size: int) -> dict[str, torch.Tensor]:
    """Replace every (qweight, qzeros, scales) triple by a float32 `weight` [out, in]."""
    from awq.utils.packing_utils import dequantize_gemm

    out = {k: v.float() if v.is_floating_point() else v for k, v in state.items() if not k.endswith(PACKED_SUFFIXES)}
    prefixes = {k[: -len(".qweight")] for k in state if k.endswith(".qweight")}
    for prefix in prefixes:
        weight = dequantize_gemm(state[f"{prefix}.qweight"], state[f"{prefix}.qzeros"], state[f"{prefix}.scales"],
                                 bits, group_size)
        out[f"{prefix}.weight"] = weight.t().contiguous().float()
    return out


def load_build_model(build_dir: Path) -> torch.nn.Module:
    """A quantized build as an fp32 model with its dequantized weights."""
    qc = quant_config(build_dir)
    method = qc.get("quant_method")
    if method != "awq" or str(qc.get("version", "gemm")).lower() != "gemm":
        raise QuantizeError(f"CPU evaluation supports AWQ GEMM builds only, got quant_method={method!r} "
                            f"version={qc.get('version')!r}", cause="evaluation")
    config_dict = json.loads((Path(build_dir) / "config.json").read_text())
    config_dict.pop("quantization_config")
    config = AutoConfig.for_model(config_dict.pop("model_type"), **config_dict)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    state = dequantize_awq_state(build_state_dict(build_dir), int(qc["bits"]), int(qc["group_size"]))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if config.tie_word_embeddings:
        model.tie_weights()
        missing = [k for k in missing if k != "lm_head.weight"]
    if unexpected or missing:
        raise QuantizeError(f"build {build_dir} does not match its architecture: missing={missing[:5]} "
                            f"unexpected={unexpected[:5]}", cause="checkpoint")
    return model.eval()


def packed_layer_bytes(build_dir: Path) -> tuple[int, int]:
    """(bytes of the packed quantized tensors, their weights' element count)."""
    state = build_state_dict(build_dir)
    qc = quant_config(build_dir)
    packed = sum(t.numel() * t.element_size() for k, t in state.items() if k.endswith(PACKED_SUFFIXES))
    per_int32 = 32 // int(qc["bits"])
    elements = sum(t.numel() * per_int32 for k, t in state.items() if k.endswith(".qweight"))
    return packed, elements
