"""The JSON form of RouteSpec and Fault: what the gateway's admin API accepts and returns.

Shared by the gateway (data plane) and the traffic backends that program it (the embedded
router here, relctl's gateway behind a Gateway API route on Kubernetes), so neither side
imports the other.
"""
from __future__ import annotations

import math
from typing import Any

from controller.traffic.base import Backend, Fault, RouteSpec

TRACKS = ("stable", "candidate")


class RouteError(ValueError):
    """A route or fault document that cannot be applied; the message says why."""


def route_to_json(spec: RouteSpec) -> dict[str, Any]:
    return {
        "model": spec.model,
        "backends": [{"track": b.track, "url": b.url, "version": b.version} for b in spec.backends],
        "weights": dict(spec.weights),
        "mirror_to": spec.mirror_to,
        "mirror_percent": spec.mirror_percent,
        "release_id": spec.release_id,
        "validators": [dict(v) for v in spec.validators],
    }


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise RouteError(message)


def _number(value: Any, name: str, lo: float, hi: float) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    _require(ok and lo <= value <= hi, f"{name} must be a number in [{lo:g}, {hi:g}], got {value!r}")
    return float(value)


def _backend_from_json(doc: Any) -> Backend:
    _require(isinstance(doc, dict), "each backend must be an object with track, url, version")
    track, url, version = doc.get("track"), doc.get("url"), doc.get("version")
    _require(track in TRACKS, f"backend track must be one of {TRACKS}, got {track!r}")
    _require(isinstance(url, str) and url.startswith(("http://", "https://")),
             f"backend url must be an http(s) URL, got {url!r}")
    _require(isinstance(version, (str, int)) and str(version) != "",
             f"backend version must be a non-empty string, got {version!r}")
    return Backend(track=track, url=url.rstrip("/"), version=str(version))


def _weights_from_json(doc: Any, tracks: set[str]) -> dict[str, float]:
    _require(isinstance(doc, dict), "weights must be an object track -> percent")
    weights = {t: _number(w, f"weights[{t!r}]", 0, 100) for t, w in doc.items()}
    unknown = set(weights) - tracks
    _require(not unknown, f"weights name tracks without a backend: {sorted(unknown)}")
    _require(abs(sum(weights.values()) - 100.0) < 1e-6,
             f"weights must sum to 100, got {sum(weights.values()):g}")
    return weights


def route_from_json(doc: Any) -> RouteSpec:
    """Parse and check the JSON form of a RouteSpec; raises RouteError with the reason."""
    _require(isinstance(doc, dict), "a route must be a JSON object")
    model = doc.get("model")
    _require(isinstance(model, str) and model.strip() != "", "route.model must be a non-empty string")
    raw_backends = doc.get("backends")
    _require(isinstance(raw_backends, list) and raw_backends, "route.backends must be a non-empty list")
    backends = tuple(_backend_from_json(b) for b in raw_backends)
    tracks = {b.track for b in backends}
    _require(len(tracks) == len(backends), "each track may appear only once in route.backends")
    weights = _weights_from_json(doc.get("weights"), tracks)
    mirror_to = doc.get("mirror_to")
    _require(mirror_to is None or mirror_to in tracks,
             f"mirror_to must be null or a backend track, got {mirror_to!r}")
    validators = doc.get("validators") or []
    _require(isinstance(validators, list) and all(isinstance(v, dict) for v in validators),
             "route.validators must be a list of objects")
    release_id = doc.get("release_id") or ""
    _require(isinstance(release_id, str), "route.release_id must be a string")
    return RouteSpec(
        model=model, backends=backends, weights=weights, mirror_to=mirror_to,
        mirror_percent=_number(doc.get("mirror_percent", 100.0), "mirror_percent", 0, 100),
        release_id=release_id, validators=tuple(validators),
    )


def fault_to_json(fault: Fault) -> dict[str, Any]:
    return {"error_rate": fault.error_rate, "latency_ms": fault.latency_ms, "truncate": fault.truncate}


def fault_from_json(doc: Any) -> Fault:
    _require(isinstance(doc, dict), "a fault must be a JSON object")
    unknown = set(doc) - {"error_rate", "latency_ms", "truncate"}
    _require(not unknown, f"unknown fault fields: {sorted(unknown)}")
    truncate = doc.get("truncate", False)
    _require(isinstance(truncate, bool), "fault.truncate must be true or false")
    return Fault(
        error_rate=_number(doc.get("error_rate", 0.0), "fault.error_rate", 0, 1),
        latency_ms=_number(doc.get("latency_ms", 0.0), "fault.latency_ms", 0, 600_000),
        truncate=truncate,
    )
