"""Cumulative counters to window counts, and the JSON form kept in the release row."""
from __future__ import annotations

from typing import Any

from controller.analysis.types import Measurement, ShadowCounts, TrackCounts, Window


# TrackCounts' plain integer counters besides requests and errors (missing in older state: 0).
PLAIN_COUNTS = ("overload", "sessions", "sessions_failed")


class CounterReset(Exception):
    """A counter went down since the window's baseline (the gateway restarted)."""


def subtract(now: Measurement, base: Measurement) -> tuple[TrackCounts, TrackCounts, ShadowCounts]:
    """(stable, candidate, shadow) counted since `base`; raises CounterReset."""
    return (_track_diff(now.stable, base.stable), _track_diff(now.candidate, base.candidate),
            _shadow_diff(now.shadow or ShadowCounts(), base.shadow or ShadowCounts()))


def _track_diff(now: TrackCounts | None, base: TrackCounts | None) -> TrackCounts:
    now, base = now or TrackCounts(), base or TrackCounts()
    return TrackCounts(
        requests=_diff(now.requests, base.requests, "requests"),
        errors=_diff(now.errors, base.errors, "errors"),
        errors_by_class={k: _diff(v, base.errors_by_class.get(k, 0), k) for k, v in now.errors_by_class.items()},
        latency_over={k: _diff(v, base.latency_over.get(k, 0), k) for k, v in now.latency_over.items()},
        **{k: _diff(getattr(now, k), getattr(base, k), k) for k in PLAIN_COUNTS},
    )


def _shadow_diff(now: ShadowCounts, base: ShadowCounts) -> ShadowCounts:
    return ShadowCounts(*(_diff(a, b, "shadow pairs") for a, b in zip(_shadow_fields(now), _shadow_fields(base))))


# Hand-written rather than dataclasses.asdict, which deep-copies: these run for every
# release on every tick (a third of a judgment's time at a thousand canaries).
def _shadow_fields(s: ShadowCounts) -> tuple[int, int, int]:
    return s.pairs, s.only_candidate_failed, s.only_stable_failed


def _track_dict(t: TrackCounts) -> dict[str, Any]:
    return {"requests": t.requests, "errors": t.errors, "errors_by_class": dict(t.errors_by_class),
            "latency_over": dict(t.latency_over), **{k: getattr(t, k) for k in PLAIN_COUNTS}}


def _shadow_dict(s: ShadowCounts) -> dict[str, int]:
    return dict(zip(("pairs", "only_candidate_failed", "only_stable_failed"), _shadow_fields(s)))


def _diff(now: int, base: int, what: str) -> int:
    if now < base:
        raise CounterReset(f"{what} counter went from {base} down to {now}")
    return now - base


def measurement_to_dict(m: Measurement) -> dict[str, Any]:
    return {"stable": _track_dict(m.stable) if m.stable else None,
            "candidate": _track_dict(m.candidate) if m.candidate else None,
            "shadow": _shadow_dict(m.shadow) if m.shadow else None}


def measurement_from_dict(d: dict[str, Any]) -> Measurement:
    return Measurement(stable=_optional_track(d.get("stable")), candidate=_optional_track(d.get("candidate")),
                       shadow=ShadowCounts(**d["shadow"]) if d.get("shadow") else None)


def window_to_dict(w: Window) -> dict[str, Any]:
    return {"canary_share": w.canary_share, "elapsed_seconds": w.elapsed_seconds,
            "stable": _track_dict(w.stable), "candidate": _track_dict(w.candidate), "shadow": _shadow_dict(w.shadow)}


def window_from_dict(d: dict[str, Any]) -> Window:
    return Window(canary_share=float(d["canary_share"]), elapsed_seconds=float(d["elapsed_seconds"]),
                  stable=_track(d["stable"]), candidate=_track(d["candidate"]),
                  shadow=ShadowCounts(**d.get("shadow") or {}))


def _optional_track(d: dict[str, Any] | None) -> TrackCounts | None:
    return None if d is None else _track(d)


def _track(d: dict[str, Any]) -> TrackCounts:
    return TrackCounts(requests=int(d["requests"]), errors=int(d["errors"]),
                       errors_by_class={k: int(v) for k, v in d.get("errors_by_class", {}).items()},
                       latency_over={k: int(v) for k, v in d.get("latency_over", {}).items()},
                       **{k: int(d.get(k, 0)) for k in PLAIN_COUNTS})
