"""Backends chosen by name in the settings: pool, traffic router, metric provider, registry, and
where quantization runs (`quantize_runner`).

Each name maps to "module:factory"; the factory takes (settings, sessions) and is imported
only when chosen, so a backend's dependencies (the kubernetes client, say) are needed only
where it is used. Adding a backend is one file with a `build` function and one line here.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import sessionmaker

    from controller.config import Settings

BACKENDS: dict[str, dict[str, str]] = {
    "pool": {
        "local-vllm": "controller.pools.local_vllm:build",
        "kubernetes": "controller.pools.kubernetes:build",
    },
    "router": {
        "embedded": "controller.traffic.embedded:build",
        "gateway-api": "controller.traffic.gateway_api:build",
    },
    "metrics": {
        "prometheus": "controller.analysis.providers.prometheus:build",
        "prometheus-batched": "controller.analysis.providers.batched:build",   # one query per metric for all
        "vllm-pods": "controller.analysis.providers.vllm:build",   # vLLM pods' own series (no relctl gateway)
    },
    "registry": {
        "mlflow": "controller.registry.mlflow_registry:build",
    },
    "quantize": {        # None: the build job runs the quantize subprocess here (quantize_stage.py)
        "local": "controller.backends:local_quantize",
        "kubernetes": "controller.k8s.quantize_job:build",
    },
}


def local_quantize(settings: "Settings", sessions: "sessionmaker") -> None:
    return None


class UnknownBackend(ValueError):
    pass


def check_name(kind: str, name: str) -> str:
    """Fail at settings load, naming the known backends, for a name nobody registered."""
    known = BACKENDS[kind]
    if name not in known:
        raise UnknownBackend(f"unknown {kind} backend {name!r}; known: {', '.join(sorted(known))}")
    return name


def make(kind: str, name: str, settings: "Settings", sessions: "sessionmaker") -> Any:
    module, _, factory = BACKENDS[kind][check_name(kind, name)].partition(":")
    return getattr(importlib.import_module(module), factory)(settings, sessions)
