"""The gateway's Prometheus metrics (names are a contract with the judge and the dashboards).

Each app gets its own CollectorRegistry so that several gateways (tests) never collide.
Label children are resolved once per route and track, not on every request.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

# "overload": 429/503 answers that carry the serving layer's overload marker (flow control of
# the whole pool, e.g. llm-d's router). The judge shows them and keeps them out of the
# version comparison.
ERROR_CLASSES = ("http_5xx", "timeout", "empty_output", "validator", "overload")
OVERLOAD_STATUSES = (429, 503)
OVERLOAD_MARKERS = ("x-llm-d-request-dropped-reason",)
# Sessions remembered per track and route (an LRU of 8-byte hashes, about 100 bytes each
# in an OrderedDict: ~6.5 MB per track at the cap). See SessionTracker.
SESSION_MEMORY = 65536
PAIR_OUTCOMES = ("both_ok", "both_failed", "only_candidate_failed", "only_stable_failed")
AGREEMENT_KINDS = ("exact", "normalized")
MODES = ("live", "shadow")

# Fixed edges from 1 ms to 30 s so that every gateway's histograms can be aggregated. The
# judge's latency thresholds must be bucket edges (exceedance counts come straight from the
# cumulative buckets), so the edges are dense -- about 25 % apart -- which puts the stable's
# p95 and p99 on different edges with an exceedance rate close to 5 % and 1 %, and offers
# the round values an SLO names (0.2, 0.5, 1 s ...).
LATENCY_BUCKETS = tuple(round(m * 10.0 ** e, 6) for e in range(-3, 1) for m in (1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8)) \
    + (10.0, 12.5, 15.0, 20.0, 25.0, 30.0)
TOKEN_GAP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

TRACK_LABELS = ("model", "version", "track", "release", "mode")
# A release's series are removed this long after its route went away: eight scrapes at the
# ServiceMonitor's 15 s interval, so Prometheus keeps their final values (history stays in its
# TSDB), and the gateway's memory is bounded by the releases of the last two minutes, not by
# every release it has served. (At 600 s, a release every 30 s held ~1 MB of RSS each for
# those 10 minutes: bench/soak.py could not show the gateway flat within its own run.)
RETIRE_AFTER_SECONDS = 120.0


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("relctl_requests", "Requests answered per track", TRACK_LABELS, registry=r)
        self.errors = Counter("relctl_errors", "Failed requests per track and error class",
                              TRACK_LABELS + ("error_class",), registry=r)
        self.duration = Histogram("relctl_request_duration_seconds", "End-to-end request latency",
                                  TRACK_LABELS, buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("relctl_ttft_seconds", "Time to first token (streaming)",
                              TRACK_LABELS, buckets=LATENCY_BUCKETS, registry=r)
        self.inter_token = Histogram("relctl_inter_token_seconds", "Gap between streamed tokens",
                                     TRACK_LABELS, buckets=TOKEN_GAP_BUCKETS, registry=r)
        self.tokens = Counter("relctl_tokens", "Tokens from the upstream usage block",
                              TRACK_LABELS + ("kind",), registry=r)
        self.shadow_pairs = Counter("relctl_shadow_pairs", "Compared live/shadow pairs",
                                    ("model", "release", "outcome"), registry=r)
        self.shadow_agreement = Counter("relctl_shadow_agreement", "Pairs whose outputs agree",
                                        ("model", "release", "kind"), registry=r)
        self.shadow_dropped = Counter("relctl_shadow_dropped", "Mirrored requests dropped (queue full)",
                                      ("model", "release"), registry=r)
        self.shadow_candidate_slower = Counter(
            "relctl_shadow_candidate_slower", "Both-ok pairs where the candidate answered slower",
            ("model", "release"), registry=r)
        self.sessions = Counter("relctl_sessions", "Distinct sessions first seen per track since the route "
                                "was applied (sticky split: the unit the split randomises)",
                                TRACK_LABELS, registry=r)
        self.sessions_failed = Counter("relctl_sessions_failed", "Sessions (as counted in relctl_sessions) "
                                       "that had their first error", TRACK_LABELS, registry=r)
        self.audit_dropped = Counter("relctl_audit_dropped", "Audit records lost (buffer full or store down)",
                                     registry=r)
        self._retiring: dict[tuple[str, ...], float] = {}     # series key -> when to remove it

    def retire(self, keys: set[tuple[str, ...]], now: float) -> None:
        """Remove these series RETIRE_AFTER_SECONDS from now. A key is (model, release) for the
        release's shadow series, or (model, release, version, track) for a track's."""
        for key in keys:
            self._retiring[key] = now + RETIRE_AFTER_SECONDS

    def keep(self, keys: set[tuple[str, ...]]) -> None:
        """These series are in use again: they stay."""
        for key in keys:
            self._retiring.pop(key, None)

    def sweep(self, now: float) -> int:
        """Remove the series retired long enough ago; returns how many keys."""
        due = [key for key, at in self._retiring.items() if at <= now]
        for key in due:
            del self._retiring[key]
            if len(key) == 2:
                for family, values in ((self.shadow_pairs, PAIR_OUTCOMES), (self.shadow_agreement, AGREEMENT_KINDS)):
                    for value in values:
                        _remove(family, *key, value)
                _remove(self.shadow_dropped, *key)
                _remove(self.shadow_candidate_slower, *key)
                continue
            model, release, version, track = key
            for mode in ("live", "shadow"):
                labels = (model, version, track, release, mode)
                for family, more in ((self.errors, ERROR_CLASSES), (self.tokens, ("prompt", "completion"))):
                    for value in more:
                        _remove(family, *labels, value)
                for family in (self.requests, self.duration, self.ttft, self.inter_token, self.sessions,
                               self.sessions_failed):
                    _remove(family, *labels)
        return len(due)

    def track(self, model: str, version: str, track: str, release: str, mode: str) -> "TrackMetrics":
        labels = (model, version, track, release, mode)
        return TrackMetrics(
            requests=self.requests.labels(*labels),
            errors={c: self.errors.labels(*labels, c) for c in ERROR_CLASSES},
            duration=self.duration.labels(*labels),
            ttft=self.ttft.labels(*labels),
            inter_token=self.inter_token.labels(*labels),
            prompt_tokens=self.tokens.labels(*labels, "prompt"),
            completion_tokens=self.tokens.labels(*labels, "completion"),
            sessions=SessionTracker(self.sessions.labels(*labels), self.sessions_failed.labels(*labels)),
        )

    def shadow(self, model: str, release: str) -> "ShadowMetrics":
        return ShadowMetrics(
            pairs={o: self.shadow_pairs.labels(model, release, o) for o in PAIR_OUTCOMES},
            agreement={k: self.shadow_agreement.labels(model, release, k) for k in AGREEMENT_KINDS},
            dropped=self.shadow_dropped.labels(model, release),
            candidate_slower=self.shadow_candidate_slower.labels(model, release),
        )


def _remove(family, *labels: str) -> None:
    try:
        family.remove(*labels)
    except KeyError:      # never created (e.g. no shadow on that track)
        pass


@dataclass(frozen=True)
class TrackMetrics:
    """Label children for one (model, version, track, release, mode); creating them makes the zero series."""
    requests: object
    errors: dict
    duration: object
    ttft: object
    inter_token: object
    prompt_tokens: object
    completion_tokens: object
    sessions: "SessionTracker"


@dataclass(frozen=True)
class ShadowMetrics:
    pairs: dict
    agreement: dict
    dropped: object
    candidate_slower: object


def overload_class(status: int, headers: Mapping[str, str]) -> str | None:
    """"overload" for a 429/503 marked as the serving layer's flow control, else None."""
    if status in OVERLOAD_STATUSES and any(h in headers for h in OVERLOAD_MARKERS):
        return "overload"
    return None


class SessionTracker:
    """Counts distinct sessions, and sessions with an error, on one track of one route.

    A bounded LRU set of 8-byte key hashes, not a sketch: counts are exact while fewer than
    `capacity` sessions are active, memory is bounded whatever the traffic, and "this
    session just had its first error" needs per-session state that a HyperLogLog cannot
    give. A session evicted and seen again counts again -- on either track alike, so the
    split stays unbiased. A new tracker comes with every applied route (a new canary step),
    so each step counts the sessions the split assigned in that step. Requests without a
    session key are sessions of one request.
    """

    def __init__(self, seen_counter, failed_counter, capacity: int = SESSION_MEMORY) -> None:
        self._seen, self._failed, self._capacity = seen_counter, failed_counter, capacity
        self._known: OrderedDict[bytes, bool] = OrderedDict()     # hash -> had an error

    def observe(self, key: str | None, failed: bool) -> None:
        if not key:
            self._seen.inc()
            if failed:
                self._failed.inc()
            return
        h = hashlib.blake2b(key.encode(), digest_size=8).digest()
        had_error = self._known.get(h)
        if had_error is None:
            self._seen.inc()
            if len(self._known) >= self._capacity:
                self._known.popitem(last=False)
        else:
            self._known.move_to_end(h)
        if failed and not had_error:
            self._failed.inc()
        self._known[h] = bool(had_error) or failed
