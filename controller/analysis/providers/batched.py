"""A metric provider that reads all releases at once: one PromQL query per metric, not per release.

With a thousand canaries judged every second, per-release reads would send five or more
queries each (about 5,000 a second). This wrapper keeps a snapshot of the gateway's
counters for every release, taken with one grouped query per metric
(`sum by (model, release, track, …) (…)`, `PrometheusProvider.grouped`), refreshed at most
every `refresh_seconds`, and answers each `read` from it. Latency histograms are queried
only for the kinds and bucket edges some release asked for. A failed refresh is data, as
everywhere in analysis: every release then reads Measurement(error=...), never an exception.

The stable's latency histogram (read once per release, when its canary starts) goes to the
wrapped provider as it is.
"""
from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client.utils import floatToGoString

from controller.analysis.providers.base import HistogramReading
from controller.analysis.providers.prometheus import HISTOGRAMS, OVERLOAD, TRACKS, label
from controller.analysis.types import Measurement, ShadowCounts, TrackCounts

log = logging.getLogger(__name__)

Key = tuple[str, str]                      # (model, release)
Rows = dict[str, list[tuple[dict[str, str], float]]]  # query name -> (labels, value) rows of one release

# name -> (series, grouping labels besides model and release, live traffic only)
COUNTERS: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "requests": ("relctl_requests_total", ("track",), True),
    "errors": ("relctl_errors_total", ("track", "error_class"), True),
    "sessions": ("relctl_sessions_total", ("track",), True),
    "sessions_failed": ("relctl_sessions_failed_total", ("track",), True),
    "shadow": ("relctl_shadow_pairs_total", ("outcome",), False),
}


class GroupedSource(Protocol):
    """What the wrapper needs from the wrapped provider (PrometheusProvider has both)."""

    def grouped(self, metric: str, by: tuple[str, ...], live_only: bool = True,
                matchers: str = "", at: float | None = None) -> list[dict[str, Any]]: ...

    def stable_latency(self, model: str, release_id: str, kind: str) -> HistogramReading: ...


@dataclass(frozen=True)
class Snapshot:
    taken: float                                            # monotonic seconds
    rows: dict[Key, Rows] = field(default_factory=dict)
    edges: dict[str, frozenset[float]] = field(default_factory=dict)   # histogram kind -> edges queried
    error: str | None = None

    def covers(self, needs: dict[str, set[float]]) -> bool:
        if self.error is not None:
            return True       # a failed refresh answers everyone until the next one is due
        return all(edges <= self.edges.get(kind, frozenset()) for kind, edges in needs.items())


class BatchedProvider:
    def __init__(self, source: GroupedSource, refresh_seconds: float = 0.5,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        if refresh_seconds <= 0:
            raise ValueError(f"refresh_seconds must be > 0, got {refresh_seconds}")
        self.source, self.refresh_seconds, self.clock, self.wall = source, refresh_seconds, clock, wall
        self.refreshes = 0
        self._snap: Snapshot | None = None
        self._wanted: dict[str, set[float]] = {}
        self._lock = threading.Lock()
        self._refresher: threading.Thread | None = None
        self._on_new_errors: Callable[[set[str]], None] | None = None

    def read(self, model: str, release_id: str, thresholds: Mapping[str, float]) -> Measurement:
        needs = _needs(thresholds)
        snap = self._current(needs)
        if snap.error is not None:
            return Measurement(error=snap.error)
        rows = snap.rows.get((model, release_id))
        if not rows or not rows.get("requests"):
            return Measurement(error=f"no relctl_requests_total series for model={model!r} release={release_id!r}")
        if not rows.get("errors"):
            # The gateway exports every error class from a track's first request on: missing
            # errors beside requests is a scrape gone stale mid-snapshot, not zero errors.
            return Measurement(error=f"incomplete snapshot: no relctl_errors_total series for release={release_id!r}")
        try:
            return _consistent(_measurement(rows, thresholds))
        except ValueError as exc:
            return Measurement(error=str(exc))

    def stable_latency(self, model: str, release_id: str, kind: str) -> HistogramReading:
        return self.source.stable_latency(model, release_id, kind)

    def _current(self, needs: dict[str, set[float]]) -> Snapshot:
        """A snapshot no older than refresh_seconds (plus one refresh) that holds the histograms asked for.

        A stale snapshot is refreshed in a thread of its own while every reader goes on with it: a
        reader never waits for Prometheus, and the reconcile that noticed the staleness is not held
        up by the query and its parsing (about 0.1 s at a thousand releases). Only a reader with no
        usable snapshot at all (the first, or one asking for histogram edges not yet queried) waits."""
        snap = self._snap
        if self._usable(snap, needs, self.refresh_seconds):
            return snap  # type: ignore[return-value]
        if self._usable(snap, needs, math.inf):
            if self._lock.acquire(blocking=False):
                self._refresher = threading.Thread(target=self._refresh, args=(needs, True), daemon=True,
                                                   name="metrics-refresh")
                self._refresher.start()
            return snap  # type: ignore[return-value]
        self._lock.acquire()
        return self._refresh(needs, False)

    def _refresh(self, needs: dict[str, set[float]], stale_only: bool) -> Snapshot:
        """Take a new snapshot (the lock is held by the caller, released here)."""
        try:
            if not stale_only and self._usable(self._snap, needs, self.refresh_seconds):
                return self._snap  # type: ignore[return-value]
            for kind, edges in needs.items():
                self._wanted.setdefault(kind, set()).update(edges)
            old, self._snap = self._snap, self._take()
            self._tell_new_errors(old, self._snap)
            return self._snap
        finally:
            self._lock.release()

    def _tell_new_errors(self, old: Snapshot | None, new: Snapshot) -> None:
        if self._on_new_errors is None or old is None or old.error is not None or new.error is not None:
            return
        fresh = {key[1] for key, rows in new.rows.items()
                 if _candidate_errors(rows) > _candidate_errors(old.rows.get(key, {}))}
        if fresh:
            try:
                self._on_new_errors(fresh)
            except Exception:   # a hint, never a reason for the snapshot to fail
                log.exception("prometheus.new_errors_callback_failed")

    def on_new_errors(self, callback: Callable[[set[str]], None]) -> None:
        """After each refresh, `callback(release_ids)` with the releases whose candidate answered
        with new errors since the previous snapshot: the controller judges those first (a breach
        waits for no other release's judgment)."""
        self._on_new_errors = callback

    def join_refresh(self, timeout: float | None = None) -> None:
        """Wait for a refresh running in the background (tests, benchmarks)."""
        if self._refresher is not None:
            self._refresher.join(timeout)

    def _usable(self, snap: Snapshot | None, needs: dict[str, set[float]], max_age: float) -> bool:
        return snap is not None and self.clock() - snap.taken < max_age and snap.covers(needs)

    def _take(self) -> Snapshot:
        started, at = self.clock(), self.wall()   # every query of the snapshot evaluated at one instant
        self.refreshes += 1
        wanted = {k: frozenset(v) for k, v in self._wanted.items()}
        rows: dict[Key, Rows] = {}
        try:
            for name, (metric, by, live) in COUNTERS.items():
                _index(rows, name, self.source.grouped(metric, by, live, "", at))
            for kind, edges in wanted.items():
                matcher = f"le=~{label(_le_regex(edges))}"
                histogram = HISTOGRAMS[kind] + "_bucket"
                _index(rows, kind, self.source.grouped(histogram, ("track", "le"), True, matcher, at))
        except Exception as exc:  # any failure is an inconclusive reading for every release
            log.warning("prometheus.batch_failed", extra={"error": str(exc)})
            return Snapshot(started, error=f"batched query failed: {exc}")
        return Snapshot(started, rows, wanted)


def _needs(thresholds: Mapping[str, float]) -> dict[str, set[float]]:
    needs: dict[str, set[float]] = {}
    for key, edge in thresholds.items():
        kind = key.split("_", 1)[0]
        if kind in HISTOGRAMS:
            needs.setdefault(kind, set()).add(float(edge))
    return needs


def _le_regex(edges: frozenset[float]) -> str:
    """The bucket edges as the gateway's client writes them in `le` (plus +Inf, the total)."""
    return "|".join(re.escape(str(floatToGoString(e))) for e in sorted(edges)) + "|\\+Inf"  # type: ignore[no-untyped-call]


def _index(rows: dict[Key, Rows], name: str, result: list[dict[str, Any]]) -> None:
    for r in result:
        labels = r["metric"]
        key = (labels.get("model", ""), labels.get("release", ""))
        value = float(r["value"][1])
        rows.setdefault(key, {}).setdefault(name, []).append((labels, value if math.isfinite(value) else 0.0))


def _candidate_errors(rows: Rows) -> float:
    return sum(v for labels, v in rows.get("errors", [])
               if labels.get("track") == "candidate" and labels.get("error_class") != OVERLOAD)


def _measurement(rows: Rows, thresholds: Mapping[str, float]) -> Measurement:
    tracks = {}
    for track in TRACKS:
        by_class: dict[str, int] = {}
        for labels, v in rows.get("errors", []):
            if labels.get("track") == track:
                cls = labels.get("error_class", "")
                by_class[cls] = by_class.get(cls, 0) + round(v)
        tracks[track] = TrackCounts(
            requests=_sum(rows, "requests", track),
            # Overload answers are the pool's flow control, shown but never blamed on a version.
            errors=sum(v for k, v in by_class.items() if k != OVERLOAD), errors_by_class=by_class,
            latency_over=_latency_over(rows, track, thresholds), overload=by_class.get(OVERLOAD, 0),
            sessions=_sum(rows, "sessions", track), sessions_failed=_sum(rows, "sessions_failed", track))
    return Measurement(stable=tracks["stable"], candidate=tracks["candidate"], shadow=_shadow(rows))


def _consistent(m: Measurement) -> Measurement:
    for track, counts in (("stable", m.stable), ("candidate", m.candidate)):
        if counts is not None and counts.errors + counts.overload > counts.requests:
            raise ValueError(f"inconsistent snapshot: {track} errors {counts.errors + counts.overload} "
                             f"> requests {counts.requests}")
    return m


def _sum(rows: Rows, name: str, track: str) -> int:
    return round(sum(v for labels, v in rows.get(name, []) if labels.get("track") == track))


def _latency_over(rows: Rows, track: str, thresholds: Mapping[str, float]) -> dict[str, int]:
    """Requests slower than each threshold: count − bucket{le=threshold} (as PrometheusProvider)."""
    out: dict[str, int] = {}
    for key, edge in thresholds.items():
        kind = key.split("_", 1)[0]
        if kind not in HISTOGRAMS:
            continue
        buckets = {float(labels.get("le", "+Inf")): v for labels, v in rows.get(kind, [])
                   if labels.get("track") == track}
        if not buckets:
            out[key] = 0      # no request on this track yet
            continue
        below = next((v for le, v in buckets.items() if math.isclose(le, edge, rel_tol=1e-9)), None)
        if math.inf not in buckets or below is None:
            raise ValueError(f"{key}: threshold {edge} s is not a bucket edge of the histogram")
        out[key] = max(round(buckets[math.inf] - below), 0)
    return out


def _shadow(rows: Rows) -> ShadowCounts | None:
    if not rows.get("shadow"):
        return None
    by: dict[str, int] = {}
    for labels, v in rows["shadow"]:
        by[labels.get("outcome", "")] = by.get(labels.get("outcome", ""), 0) + round(v)
    return ShadowCounts(pairs=sum(by.values()), only_candidate_failed=by.get("only_candidate_failed", 0),
                        only_stable_failed=by.get("only_stable_failed", 0))


def build(settings: Any, sessions: Any) -> BatchedProvider:
    """Backend factory (controller.backends, name "prometheus-batched")."""
    from controller.analysis.providers.prometheus import PrometheusProvider

    seconds = getattr(settings, "metrics_batch_seconds", 0.5)
    return BatchedProvider(PrometheusProvider(settings.prometheus_url), refresh_seconds=seconds)
