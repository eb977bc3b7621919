"""Loads a quantized build as a full-precision model on CPU, for evaluation.

vLLM's CPU build has no 4-bit AWQ kernel on this CPU and transformers needs IPEX to run
AWQ on CPU, so the packed 4-bit weights are unpacked back into float weights: numerically
the weights the GPU kernel would use. Two formats: AutoAWQ's GEMM packing (its own
unpacking utilities) and compressed-tensors' pack-quantized (llm-compressor's output).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM

from quantize.errors import QuantizeError

AWQ_SUFFIXES = (".qweight", ".qzeros", ".scales")
CT_SUFFIXES = (".weight_packed", ".weight_scale", ".weight_zero_point", ".weight_shape")
PACKED_SUFFIXES = AWQ_SUFFIXES + CT_SUFFIXES


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

    out = _unpacked_tensors(state)
    prefixes = {k[: -len(".qweight")] for k in state if k.endswith(".qweight")}
    for prefix in prefixes:
        weight = dequantize_gemm(state[f"{prefix}.qweight"], state[f"{prefix}.qzeros"], state[f"{prefix}.scales"],
                                 bits, group_size)
        out[f"{prefix}.weight"] = weight.t().contiguous().float()
    return out


def dequantize_pack_quantized_state(state: dict[str, torch.Tensor], bits: int, group_size: int,
                                    symmetric: bool) -> dict[str, torch.Tensor]:
    """compressed-tensors pack-quantized: signed ints offset by 2^(bits-1) and packed 32/bits per
    int32 along the last axis (zero points along the first); weight = (q - zero) * scale per group."""
    out = _unpacked_tensors(state)
    for prefix in {k[: -len(".weight_packed")] for k in state if k.endswith(".weight_packed")}:
        rows, cols = (int(x) for x in state[f"{prefix}.weight_shape"])
        q = _unpack_int32(state[f"{prefix}.weight_packed"], bits, cols)
        scale = state[f"{prefix}.weight_scale"].float()
        if symmetric:
            zero = torch.zeros_like(scale)
        else:
            zero = _unpack_int32(state[f"{prefix}.weight_zero_point"].t(), bits, rows).t().float()
        out[f"{prefix}.weight"] = ((q.float() - _per_column(zero, group_size, cols))
                                   * _per_column(scale, group_size, cols)).contiguous()
    return out


def _per_column(t: torch.Tensor, group_size: int, cols: int) -> torch.Tensor:
    """Per-group values [r, groups] -> per-column [r, cols]."""
    return t.repeat_interleave(group_size, dim=1)[:, :cols]


def _unpack_int32(packed: torch.Tensor, bits: int, length: int) -> torch.Tensor:
    """[r, c] int32 holding 32/bits values each, lowest bits first -> [r, length] signed ints."""
    per_word = 32 // bits
    shifts = torch.arange(per_word, dtype=torch.int32) * bits
    values = (packed.to(torch.int32).unsqueeze(-1) >> shifts) & ((1 << bits) - 1)
    return values.reshape(packed.shape[0], -1)[:, :length] - (1 << (bits - 1))


def _unpacked_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items() if not k.endswith(PACKED_SUFFIXES)}


def _dequantized_state(build_dir: Path, qc: dict) -> dict[str, torch.Tensor]:
    method = qc.get("quant_method")
    state = build_state_dict(build_dir)
    if method == "awq" and str(qc.get("version", "gemm")).lower() == "gemm":
        return dequantize_awq_state(state, int(qc["bits"]), int(qc["group_size"]))
    if method == "compressed-tensors" and qc.get("format") == "pack-quantized":
        groups = list(qc.get("config_groups", {}).values())
        weights = groups[0].get("weights", {}) if len(groups) == 1 else {}
        if weights.get("strategy") == "group" and weights.get("type") == "int":
            return dequantize_pack_quantized_state(state, int(weights["num_bits"]), int(weights["group_size"]),
                                                   bool(weights.get("symmetric")))
    raise QuantizeError(f"CPU evaluation supports AWQ GEMM and compressed-tensors pack-quantized (int, group) "
                        f"builds, got quant_method={method!r} version={qc.get('version')!r} "
                        f"format={qc.get('format')!r}", cause="evaluation")


def load_build_model(build_dir: Path) -> torch.nn.Module:
    """A quantized build as an fp32 model with its dequantized weights."""
    qc = quant_config(build_dir)
    state = _dequantized_state(build_dir, qc)
    config_dict = json.loads((Path(build_dir) / "config.json").read_text())
    config_dict.pop("quantization_config")
    config = AutoConfig.for_model(config_dict.pop("model_type"), **config_dict)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
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
    packed = sum(t.numel() * t.element_size() for k, t in state.items() if k.endswith(PACKED_SUFFIXES))
    qc = quant_config(build_dir)
    if qc.get("quant_method") == "awq":
        per_int32 = 32 // int(qc["bits"])
        elements = sum(t.numel() * per_int32 for k, t in state.items() if k.endswith(".qweight"))
    else:
        elements = sum(int(t[0]) * int(t[1]) for k, t in state.items() if k.endswith(".weight_shape"))
    return packed, elements
