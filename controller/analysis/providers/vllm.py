"""Metric provider over the vLLM pods' own series: the judge where relctl's gateway is not in the path.

With the Gateway API router in mirror_mode `request-mirror` or `off`, the cluster's gateway
splits the traffic and nothing exports `relctl_*` series. Every vLLM pod does export its own
(vLLM 0.32, the image the Kubernetes pool runs; names and labels as in vllm/v1/metrics/loggers.py
and vllm/entrypoints/serve/instrumentator/metrics.py):

- `http_requests_total{handler, method, status}`: prometheus-fastapi-instrumentator, as vLLM's
  API server sets it up (status grouped: "2xx", "4xx", "5xx"). Requests of a track are those of
  the OpenAI handlers (HANDLERS); its errors are the 5xx answers;
- `vllm:admission_rejections_total{model_name, reason}`: requests refused by the admission queue
  limits, answered 503 (QueueOverflowError, MaxQueuedTokensError). They are the serving layer's
  flow control, counted as `overload` (never blamed on a version) and taken out of the 5xx;
- `vllm:e2e_request_latency_seconds` and `vllm:time_to_first_token_seconds` histograms
  `{model_name, engine}` for the latency tests (engine-side times: no network, no HTTP).

A track is the version's pods: Prometheus labels every scraped series with the pod's
`namespace` and `pod` (a PodMonitor or ServiceMonitor does), and a version's pods are named
after its Deployment (`names.pod_regex`). The release's versions and phase come from the store.

What it cannot judge: Gateway API's RequestMirror discards the candidate's answers, so there
are no shadow pairs; a release in its shadow phase reads as an error saying so (the analyzer
holds it inconclusive, then pauses it). Policies judged with this provider skip the shadow
phase (`shadow.duration_seconds: 0`). The counters are per pod since it started, not per
release: the analyzer subtracts each window's baseline, and a pod that goes away (scale-down,
restart) lowers the sum, which the analyzer treats as a counter reset (the window restarts).
Any failure is returned as Measurement(error=...), never raised.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_api_client import PrometheusConnect

from controller.analysis.providers.base import HistogramReading
from controller.analysis.providers.prometheus import (OVERLOAD, QueryFailed, bucket_edge, instant_query, label,
                                                     requests_over, sample_value)
from controller.analysis.types import Measurement, TrackCounts
from controller.k8s import names

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from controller.config import Settings

log = logging.getLogger(__name__)

REQUESTS = "http_requests_total"
HANDLERS = "/v1/chat/completions|/v1/completions"
REJECTIONS = "vllm:admission_rejections_total"
HISTOGRAMS = {"e2e": "vllm:e2e_request_latency_seconds", "ttft": "vllm:time_to_first_token_seconds"}
HTTP_5XX = "http_5xx"
NO_SHADOW = ("no shadow pairs to judge: the cluster's gateway mirrors the candidate's requests and discards "
             "its answers (Gateway API RequestMirror); skip the shadow phase (shadow.duration_seconds: 0) or "
             "use mirror_mode relctl-gateway")


@dataclass(frozen=True)
class ReleaseVersions:
    """What the provider needs of a release: its tracks' versions, the pods' namespace and its phase."""
    stable: str | None
    candidate: str
    namespace: str
    phase: str


Resolver = Callable[[str, str], ReleaseVersions]     # (model, release id) -> its versions; LookupError if none


class VllmPodsProvider:
    def __init__(self, url: str, resolve: Resolver, timeout_seconds: float = 5.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"Prometheus URL must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        self._resolve = resolve
        self._prom = PrometheusConnect(url=self.url, disable_ssl=True, timeout=timeout_seconds)

    def read(self, model: str, release_id: str, thresholds: Mapping[str, float]) -> Measurement:
        at = time.time()      # every query of one reading sees the same samples
        try:
            rel = self._resolve(model, release_id)
            if rel.phase == "shadow":
                return Measurement(error=NO_SHADOW)
            if rel.stable is None:
                return Measurement(error=f"release {release_id} has no stable version to compare with")
            stable = self._track(model, rel.namespace, rel.stable, thresholds, at, required=True)
            candidate = self._track(model, rel.namespace, rel.candidate, thresholds, at, required=False)
        except (QueryFailed, LookupError) as exc:
            log.warning("vllm_metrics.read_failed", extra={"model": model, "release": release_id, "error": str(exc)})
            return Measurement(error=str(exc))
        return Measurement(stable=stable, candidate=candidate, shadow=None)

    def stable_latency(self, model: str, release_id: str, kind: str) -> HistogramReading:
        """The stable version's histogram since its pods started (vLLM's series carry no release)."""
        if kind not in HISTOGRAMS:
            return HistogramReading(error=f"unknown latency kind {kind!r}; known: {', '.join(HISTOGRAMS)}")
        try:
            rel = self._resolve(model, release_id)
            if rel.stable is None:
                return HistogramReading(error=f"release {release_id} has no stable version")
            sel = _selector(model, rel.namespace, rel.stable, with_model=True)
            rows = self._query(f"sum by (le) ({HISTOGRAMS[kind]}_bucket{{{sel}}})")
        except (QueryFailed, LookupError) as exc:
            return HistogramReading(error=str(exc))
        if not rows:
            return HistogramReading(error=f"no {HISTOGRAMS[kind]}_bucket series for {{{sel}}}")
        return HistogramReading(buckets={bucket_edge(r): sample_value(r) for r in rows})

    def _track(self, model: str, namespace: str, version: str, thresholds: Mapping[str, float], at: float,
               required: bool) -> TrackCounts:
        pods = _selector(model, namespace, version, with_model=False)
        rows = self._query(f'sum by (status) ({REQUESTS}{{{pods},handler=~"{HANDLERS}"}})', at)
        if not rows and required:
            raise QueryFailed(f"no {REQUESTS} series for the OpenAI handlers of {{{pods}}}: are the vLLM pods "
                              "scraped (a PodMonitor)?")
        by_status = {r["metric"].get("status", ""): round(sample_value(r)) for r in rows}
        rejected = self._query(f"sum({REJECTIONS}{{{_selector(model, namespace, version, with_model=True)}}})", at)
        overload = round(sample_value(rejected[0])) if rejected else 0
        requests = sum(by_status.values())
        errors = max(by_status.get("5xx", 0) - overload, 0)     # admission rejections are 503s too
        if errors + overload > requests:
            raise QueryFailed(f"inconsistent reading: version {version} errors {errors + overload} > requests "
                              f"{requests}")
        return TrackCounts(requests=requests, errors=errors, errors_by_class={HTTP_5XX: errors, OVERLOAD: overload},
                           latency_over=self._latency_over(model, namespace, version, thresholds, at),
                           overload=overload)

    def _latency_over(self, model: str, namespace: str, version: str, thresholds: Mapping[str, float],
                      at: float) -> dict[str, int]:
        """Requests slower than each threshold: count − bucket{le=threshold}."""
        out: dict[str, int] = {}
        sel = _selector(model, namespace, version, with_model=True)
        for kind, metric in HISTOGRAMS.items():
            wanted = {k: v for k, v in thresholds.items() if k.startswith(kind + "_")}
            if not wanted:
                continue
            rows = self._query(f"sum by (le) ({metric}_bucket{{{sel}}})", at)
            buckets = {bucket_edge(r): sample_value(r) for r in rows}
            for key, edge in wanted.items():
                out[key] = requests_over(buckets, edge, key)
        return out

    def _query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        return instant_query(self._prom, promql, at)


def _selector(model: str, namespace: str, version: str, with_model: bool) -> str:
    sel = f"namespace={label(namespace)},pod=~{label(names.pod_regex(model, version))}"
    return sel + f",model_name={label(model)}" if with_model else sel     # vLLM's --served-model-name


def store_resolver(sessions: sessionmaker[Session], namespace_of: Callable[[str], str]) -> Resolver:
    """Versions from the release row: the candidate track serves the deployed build when there is one."""
    from controller.store.models import ReleaseRow

    def resolve(model: str, release_id: str) -> ReleaseVersions:
        with sessions() as s:
            row = s.get(ReleaseRow, release_id)
            if row is None or row.model != model:
                raise LookupError(f"no release {release_id} of model {model!r} in the store")
            deployed = (row.status or {}).get("deployment", {}).get("version")
            return ReleaseVersions(stable=row.stable_version, candidate=str(deployed or row.candidate_version),
                                   namespace=namespace_of(model), phase=row.phase)
    return resolve


def build(settings: Settings, sessions: sessionmaker[Session]) -> VllmPodsProvider:
    """Backend factory (controller.backends, name "vllm-pods"): the vLLM pods' series in Prometheus."""
    from controller.k8s import tenants as k8s_tenants

    tenants = getattr(settings, "tenants", None) or {}
    k = settings.kubernetes
    return VllmPodsProvider(settings.prometheus_url, store_resolver(
        sessions, lambda model: k8s_tenants.for_model(k, tenants, model).namespace))
