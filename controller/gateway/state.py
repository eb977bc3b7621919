"""What the gateway knows: its routes, faults, metrics, audit sink and settings.

Routes are immutable once compiled and replaced as a whole, so a weight change is one
dict assignment: requests already in flight keep the route they started with.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from controller.gateway.audit import AuditSink, Redactor, default_redact
from controller.gateway.metrics import GatewayMetrics, ShadowMetrics, TrackMetrics
from controller.gateway.routing import Split
from policies.validators import Validator, compile_validators
from controller.traffic.base import Fault, RouteSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GatewayConfig:
    admin_token: str
    db_url: str | None = None
    upstream_timeout_s: float = 120.0     # whole buffered call / silence between stream chunks
    shadow_timeout_s: float = 30.0
    shadow_queue_size: int = 1024
    shadow_workers: int = 32        # coroutines, cheap: enough to keep pace with live concurrency
    audit_batch_size: int = 500
    audit_interval_s: float = 1.0
    redact: Redactor = default_redact

    def __post_init__(self) -> None:
        if not self.admin_token:
            raise ValueError("the gateway needs a non-empty admin token")
        if self.shadow_queue_size < 1 or self.shadow_workers < 1:
            raise ValueError("shadow_queue_size and shadow_workers must be at least 1")


@dataclass(frozen=True)
class Target:
    track: str
    url: str
    version: str
    live: TrackMetrics
    shadow: TrackMetrics


@dataclass(frozen=True)
class CompiledRoute:
    spec: RouteSpec
    split: Split
    targets: dict[str, Target]
    validators: tuple[Validator, ...]
    shadow_metrics: ShadowMetrics

    @property
    def model(self) -> str:
        return self.spec.model

    @property
    def release(self) -> str:
        return self.spec.release_id


def compile_route(spec: RouteSpec, metrics: GatewayMetrics) -> CompiledRoute:
    """Check and prepare a route; creating the label children pre-creates zero series."""
    validators = compile_validators(spec.validators)
    split = Split.from_weights(spec.weights)
    targets = {
        b.track: Target(
            track=b.track, url=b.url, version=b.version,
            live=metrics.track(spec.model, b.version, b.track, spec.release_id, "live"),
            shadow=metrics.track(spec.model, b.version, b.track, spec.release_id, "shadow"),
        )
        for b in spec.backends
    }
    return CompiledRoute(spec=spec, split=split, targets=targets, validators=validators,
                         shadow_metrics=metrics.shadow(spec.model, spec.release_id))


def series_keys(route: CompiledRoute | None) -> set[tuple[str, ...]]:
    """The metric series a route writes to, as GatewayMetrics.retire names them."""
    if route is None:
        return set()
    return {(route.model, route.release)} | {(route.model, route.release, t.version, t.track)
                                             for t in route.targets.values()}


def upstream_timeouts(config: GatewayConfig) -> dict[tuple[str, bool], aiohttp.ClientTimeout]:
    """Built once: a buffered call has a total limit; a stream only a limit on silence."""
    out = {}
    for mode, limit in (("live", config.upstream_timeout_s), ("shadow", config.shadow_timeout_s)):
        out[(mode, False)] = aiohttp.ClientTimeout(total=limit)
        out[(mode, True)] = aiohttp.ClientTimeout(total=None, sock_connect=limit, sock_read=limit)
    return out


@dataclass
class GatewayState:
    config: GatewayConfig
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    routes: dict[str, CompiledRoute] = field(default_factory=dict)
    faults: dict[tuple[str, str], Fault] = field(default_factory=dict)
    audit: AuditSink | None = None

    timeouts: dict = field(default_factory=dict)     # (mode, stream) -> aiohttp.ClientTimeout
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.timeouts = upstream_timeouts(self.config)
        if self.audit is None:
            self.audit = AuditSink(self.config.db_url, batch_size=self.config.audit_batch_size,
                                   interval_s=self.config.audit_interval_s,
                                   on_drop=lambda n: self.metrics.audit_dropped.inc(n))

    def apply_route(self, spec: RouteSpec) -> CompiledRoute:
        compiled = compile_route(spec, self.metrics)
        old = self.routes.get(spec.model)
        self.routes[spec.model] = compiled          # one assignment: atomic for the event loop
        self._retire_unused(old, compiled)
        log.info("route applied", extra={"model": spec.model, "weights": dict(spec.weights),
                                         "mirror_to": spec.mirror_to, "release": spec.release_id})
        return compiled

    def remove_route(self, model: str) -> bool:
        old = self.routes.pop(model, None)
        if old is not None:
            self._retire_unused(old, None)
            log.info("route removed", extra={"model": model})
        return old is not None

    def _retire_unused(self, old: CompiledRoute | None, new: CompiledRoute | None) -> None:
        """Series the old route had and the new one has not are removed later (GatewayMetrics.retire)."""
        now, gone, kept = self.clock(), series_keys(old), series_keys(new)
        self.metrics.sweep(now)
        self.metrics.keep(kept)
        self.metrics.retire(gone - kept, now)

    def set_fault(self, model: str, track: str, fault: Fault) -> None:
        if fault == Fault():
            self.faults.pop((model, track), None)
        else:
            self.faults[(model, track)] = fault
        log.info("fault set", extra={"model": model, "track": track, "error_rate": fault.error_rate,
                                     "latency_ms": fault.latency_ms, "truncate": fault.truncate})

    def fault_for(self, model: str, track: str) -> Fault | None:
        return self.faults.get((model, track)) if self.faults else None
