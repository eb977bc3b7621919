"""The traffic-router interface: how the controller splits and mirrors a model's requests.

One backend per file (embedded gateway, Gateway API HTTPRoute, ...). The controller only
ever talks to this interface; every call is idempotent, so a reconcile tick can re-apply
the desired routes after a crash.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Backend:
    track: str          # "stable" | "candidate"
    url: str            # base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8001
    version: str        # registry version served there


@dataclass(frozen=True)
class RouteSpec:
    model: str                                   # the name clients send in "model"
    backends: tuple[Backend, ...]
    weights: dict[str, float]                    # track -> percent, sums to 100
    mirror_to: str | None = None                 # track that receives mirrored copies (shadow)
    mirror_percent: float = 100.0
    release_id: str = ""                         # label on metrics and audit records
    validators: tuple[dict, ...] = field(default_factory=tuple)  # output validators from the policy


@dataclass(frozen=True)
class Fault:
    error_rate: float = 0.0       # share of requests answered with HTTP 503 by the gateway
    latency_ms: float = 0.0       # added before forwarding
    truncate: bool = False        # cut the output to nothing (an "empty output" error)


class TrafficRouter(Protocol):
    def apply(self, spec: RouteSpec) -> None: ...
    def current(self, model: str) -> RouteSpec | None: ...
    def remove(self, model: str) -> None: ...
    def set_fault(self, model: str, track: str, fault: Fault) -> None: ...
