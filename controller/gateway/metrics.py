"""The gateway's Prometheus metrics (names are a contract with the judge and the dashboards).

Each app gets its own CollectorRegistry so that several gateways (tests) never collide.
Label children are resolved once per route and track, not on every request.
"""
from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

ERROR_CLASSES = ("http_5xx", "timeout", "empty_output", "validator")
PAIR_OUTCOMES = ("both_ok", "both_failed", "only_candidate_failed", "only_stable_failed")
AGREEMENT_KINDS = ("exact", "normalized")
MODES = ("live", "shadow")

# Fixed edges from 1 ms to 30 s so that every gateway's histograms can be aggregated.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                   1.0, 2.5, 5.0, 10.0, 20.0, 30.0)
TOKEN_GAP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

TRACK_LABELS = ("model", "version", "track", "release", "mode")


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
        self.audit_dropped = Counter("relctl_audit_dropped", "Audit records lost (buffer full or store down)",
                                     registry=r)

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
        )

    def shadow(self, model: str, release: str) -> "ShadowMetrics":
        return ShadowMetrics(
            pairs={o: self.shadow_pairs.labels(model, release, o) for o in PAIR_OUTCOMES},
            agreement={k: self.shadow_agreement.labels(model, release, k) for k in AGREEMENT_KINDS},
            dropped=self.shadow_dropped.labels(model, release),
            candidate_slower=self.shadow_candidate_slower.labels(model, release),
        )


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


@dataclass(frozen=True)
class ShadowMetrics:
    pairs: dict
    agreement: dict
    dropped: object
    candidate_slower: object
