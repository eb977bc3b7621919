"""Prometheus metric provider (prometheus-api-client) over the gateway's relctl_* metrics.

Instant queries of cumulative counters, summed per track; the analyzer subtracts the
window's baseline. Any failure comes back as Measurement(error=...), never raised.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from requests import RequestException
from urllib3.util.retry import Retry

from controller.analysis.providers.base import HistogramReading
from controller.analysis.types import Measurement, ShadowCounts, TrackCounts

if TYPE_CHECKING:
    from sqlalchemy.orm import sessionmaker

    from controller.config import Settings

log = logging.getLogger(__name__)

HISTOGRAMS = {"e2e": "relctl_request_duration_seconds", "ttft": "relctl_ttft_seconds"}
TRACKS = ("stable", "candidate")
OVERLOAD = "overload"      # the gateway's error class for the serving layer's overload answers


class QueryFailed(Exception):
    pass


def label(value: str) -> str:
    """A PromQL string literal for a label value."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class PrometheusProvider:
    def __init__(self, url: str, timeout_seconds: float = 5.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"Prometheus URL must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        # One quick retry: a tick is a few seconds, and a failed read is simply inconclusive. A read
        # timeout is not retried: a hung server would only double the time the tick waits.
        retry = Retry(total=1, read=0, backoff_factor=0.1, status_forcelist=(502, 503, 504),
                      allowed_methods=("GET",))
        self._prom = PrometheusConnect(url=self.url, disable_ssl=True, timeout=timeout_seconds, retry=retry)

    def read(self, model: str, release_id: str, thresholds: Mapping[str, float]) -> Measurement:
        sel = f"model={label(model)},release={label(release_id)}"
        at = time.time()   # every query of one reading sees the same samples (no partial reading)
        try:
            tracks = self._tracks(sel + ',mode="live"', thresholds, at)
            shadow = self._shadow(sel, at)
        except QueryFailed as exc:
            log.warning("prometheus.query_failed", extra={"model": model, "release": release_id, "error": str(exc)})
            return Measurement(error=str(exc))
        return Measurement(stable=tracks["stable"], candidate=tracks["candidate"], shadow=shadow)

    def stable_latency(self, model: str, release_id: str, kind: str) -> HistogramReading:
        if kind not in HISTOGRAMS:
            return HistogramReading(error=f"unknown latency kind {kind!r}; known: {', '.join(HISTOGRAMS)}")
        sel = f'model={label(model)},release={label(release_id)},track="stable",mode="live"'
        try:
            rows = self._query(f"sum by (le) ({HISTOGRAMS[kind]}_bucket{{{sel}}})")
        except QueryFailed as exc:
            return HistogramReading(error=str(exc))
        return HistogramReading(buckets={bucket_edge(r): sample_value(r) for r in rows})

    def recent_traffic(self, model: str, seconds: int = 600) -> tuple[int, int] | str:
        """(requests, errors) every track served live for `model` over the last `seconds`, all
        releases (the input of planning.plan_from_counts); overload answers are not errors.
        A failed query comes back as its message."""
        sel = f'model={label(model)},mode="live"'
        try:
            req = self._query(f"sum(increase(relctl_requests_total{{{sel}}}[{int(seconds)}s]))")
            err = self._query(f'sum(increase(relctl_errors_total{{{sel},error_class!="{OVERLOAD}"}}[{int(seconds)}s]))')
        except QueryFailed as exc:
            return str(exc)
        if not req:
            return f"no relctl_requests_total series for {{{sel}}}"
        return round(sample_value(req[0])), round(sample_value(err[0])) if err else 0

    def _tracks(self, sel: str, thresholds: Mapping[str, float], at: float) -> dict[str, TrackCounts]:
        requests = self._query(f"sum by (track) (relctl_requests_total{{{sel}}})", at)
        if not requests:
            raise QueryFailed(f"no relctl_requests_total series for {{{sel}}}")
        errors = self._query(f"sum by (track, error_class) (relctl_errors_total{{{sel}}})", at)
        sessions = self._query(f"sum by (track) (relctl_sessions_total{{{sel}}})", at)
        failed = self._query(f"sum by (track) (relctl_sessions_failed_total{{{sel}}})", at)
        over = self._latency_over(sel, thresholds, at)
        out = {}
        for track in TRACKS:
            by_class = {r["metric"].get("error_class", ""): round(sample_value(r))
                        for r in errors if r["metric"].get("track") == track}
            out[track] = TrackCounts(
                requests=_track_sum(requests, track),
                # Overload answers are the pool's flow control, shown but never blamed on a version.
                errors=sum(v for k, v in by_class.items() if k != OVERLOAD), errors_by_class=by_class,
                latency_over=over.get(track, {}), overload=by_class.get(OVERLOAD, 0),
                sessions=_track_sum(sessions, track), sessions_failed=_track_sum(failed, track))
            if out[track].errors > out[track].requests:   # series scraped at different moments
                raise QueryFailed(f"inconsistent reading: {track} errors {out[track].errors} > requests "
                                  f"{out[track].requests}")
        return out

    def _latency_over(self, sel: str, thresholds: Mapping[str, float], at: float) -> dict[str, dict[str, int]]:
        """Per track, requests slower than each threshold: count − bucket{le=threshold}."""
        out: dict[str, dict[str, int]] = {t: {} for t in TRACKS}
        for kind, metric in HISTOGRAMS.items():
            wanted = {k: v for k, v in thresholds.items() if k.startswith(kind + "_")}
            if not wanted:
                continue
            rows = self._query(f"sum by (track, le) ({metric}_bucket{{{sel}}})", at)
            for track in TRACKS:
                buckets = {bucket_edge(r): sample_value(r) for r in rows if r["metric"].get("track") == track}
                for key, edge in wanted.items():
                    out[track][key] = requests_over(buckets, edge, key)
        return out

    def _shadow(self, sel: str, at: float) -> ShadowCounts | None:
        rows = self._query(f"sum by (outcome) (relctl_shadow_pairs_total{{{sel}}})", at)
        if not rows:
            return None
        by = {r["metric"].get("outcome", ""): round(sample_value(r)) for r in rows}
        return ShadowCounts(pairs=sum(by.values()), only_candidate_failed=by.get("only_candidate_failed", 0),
                            only_stable_failed=by.get("only_stable_failed", 0))

    def grouped(self, metric: str, by: tuple[str, ...], live_only: bool = True, matchers: str = "",
                at: float | None = None) -> list[dict[str, Any]]:
        """One instant query for every release at once: `sum by (model, release, *by)` of a series.

        Used by the batched provider (providers/batched.py), which answers each release's
        read from these rows instead of sending its own queries; `at` (unix seconds) pins
        the evaluation time so that the queries of one snapshot see the same samples.
        Raises QueryFailed.
        """
        sel = ",".join(m for m in ('release!=""', 'mode="live"' if live_only else "", matchers) if m)
        return self._query(f"sum by ({', '.join(('model', 'release', *by))}) ({metric}{{{sel}}})", at)

    def _query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        return instant_query(self._prom, promql, at)


def instant_query(prom: PrometheusConnect, promql: str, at: float | None = None) -> list[dict[str, Any]]:
    """One instant query (at `at`, else now); any failure is QueryFailed naming the query."""
    try:
        rows: list[dict[str, Any]] = prom.custom_query(promql, params={"time": at} if at is not None else None)
        return rows
    except (PrometheusApiClientException, RequestException, ValueError) as exc:
        raise QueryFailed(f"query failed: {promql}: {exc}") from None


def _track_sum(rows: list[dict[str, Any]], track: str) -> int:
    return round(sum(sample_value(r) for r in rows if r["metric"].get("track") == track))


def requests_over(buckets: dict[float, float], edge: float, key: str) -> int:
    if not buckets:
        return 0      # no request on this track yet
    total = buckets.get(math.inf)
    below = next((v for le, v in buckets.items() if math.isclose(le, edge, rel_tol=1e-9)), None)
    if total is None or below is None:
        raise QueryFailed(f"{key}: threshold {edge} s is not a bucket edge of the histogram")
    return max(round(total - below), 0)


def sample_value(row: dict[str, Any]) -> float:
    v = float(row["value"][1])
    return v if math.isfinite(v) else 0.0


def bucket_edge(row: dict[str, Any]) -> float:
    return float(row["metric"].get("le", "+Inf"))


def build(settings: Settings, sessions: sessionmaker[Any]) -> PrometheusProvider:
    """Backend factory (controller.backends): counters from Prometheus."""
    return PrometheusProvider(settings.prometheus_url)
