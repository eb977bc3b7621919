"""Policy fields for canary and shadow analysis (the judge's knobs).

Defaults are the safe choice: a release's false-rollback probability is at most
`shadow_alpha + alpha`, whatever the number of ticks, and promotion needs positive
evidence of "no regression" plus a minimum soak and sample count in every window.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from policies.durations import duration


class SloObjective(BaseModel):
    """An absolute objective, e.g. p99 end to end <= 0.5 s: at most 1 - quantile of the
    candidate's requests may be slower than max_seconds."""
    model_config = ConfigDict(extra="forbid")

    metric: Literal["e2e", "ttft"]
    quantile: float = Field(gt=0, lt=1, description="e.g. 0.99 for a p99 objective")
    max_seconds: float = duration(..., le=60, description="latency the quantile must not exceed; a bucket edge of "
                                                           "the gateway's histograms, else the next lower edge is used")


class AnalysisPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unit: Literal["request", "session"] = Field(
        "request", description="what the split randomises: 'request', or 'session' when the gateway pins users "
                               "(X-Relctl-Session, user); then errors count failed sessions and the sample-ratio "
                               "check counts sessions")

    # False-alarm budgets and the sequential tests.
    alpha: float = Field(0.05, gt=0, lt=0.5,
                         description="canary false-rollback budget, split across the metrics judged")
    shadow_alpha: float = Field(0.01, gt=0, lt=0.5, description="false-rollback budget of the paired shadow test")
    beta: float = Field(0.2, gt=0, lt=0.5,
                        description="SPRT type II error: sets the boundary for accepting 'no regression'")
    min_effect: float = Field(2.0, gt=1, le=100,
                              description="smallest error-rate ratio candidate/stable worth catching")
    mixture_k0: float = Field(10.0, gt=0, le=1e6,
                              description="Beta-mixture prior concentration (smaller: faster on large effects)")
    sprt_weight: float = Field(0.25, ge=0, le=1, description="weight of the SPRT at min_effect in the averaged e-value")
    large_effect_factor: float = Field(
        2.5, ge=1, le=100, description="a second SPRT is tuned for this many times "
                                       "the minimum effect (big regressions, fewer bad answers)")
    large_effect_weight: float = Field(
        0.70, ge=0, le=1, description="weight of that second SPRT; the Beta mixture gets "
                                      "1 - sprt_weight - large_effect_weight")
    later_step_threshold_factor: float = Field(
        1.25, ge=1, le=10, description="spend the false-rollback budget Ville's 1/alpha leaves unused: the first "
                                       "canary step rolls back below 1/alpha (computed exactly), later steps at up to "
                                       "this factor above it; 1 keeps 1/alpha everywhere")
    error_alpha_share: float = Field(0.5, gt=0, lt=1,
                                     description="share of alpha for errors when latency is judged too")
    error_rate_tolerance: float = Field(
        0.02, ge=0, lt=1, description="accept 'no regression' when the candidate's error rate is confidently below "
                                      "this (errors too rare for the relative test); 0 disables")
    # Latency: requests over the stable version's percentiles, judged like errors.
    latency_metrics: list[Literal["e2e", "ttft"]] = Field(default_factory=lambda: ["e2e", "ttft"])
    latency_quantiles: list[float] = Field(default_factory=lambda: [0.5, 0.95, 0.99])
    latency_min_effect: float = Field(1.5, gt=1, le=100, description="smallest exceedance-rate ratio worth catching")
    latency_min_samples: int = Field(
        100, ge=1, description="stable requests in the release (shadow phase) needed to fix latency thresholds")
    slo: list[SloObjective] = Field(default_factory=list, description="absolute latency objectives: the candidate "
                                                                      "rolls back when it breaks one and the stable "
                                                                      "does not")
    slo_alpha: float = Field(0.01, gt=0, lt=0.5, description="false-rollback budget of each SLO objective")
    require_latency_acceptance: bool = Field(False, description="latency must also accept 'no regression' to promote")
    # Sample-ratio mismatch: pauses the release.
    srm_alpha: float = Field(0.001, gt=0, lt=0.5, description="false-pause budget of the sample-ratio check")
    srm_k0: float = Field(1000.0, gt=0, le=1e9, description="SRM prior concentration (larger: finer mismatches)")
    # Promotion and timing, per window (shadow phase or canary step).
    min_requests: int = Field(
        50, ge=1, description="candidate requests (canary) or mirrored pairs (shadow) per window before promotion")
    min_soak_seconds: float = duration(30, allow_zero=True, description="counted seconds per window before promotion")
    settle_seconds: float = duration(5, allow_zero=True,
                                     description="wait after a window starts before counting (>= 2 scrape intervals)")
    max_window_seconds: float = duration(1800, description="no decision after this long pauses the release")
    max_inconclusive_seconds: float = duration(120, description="metrics missing this long pauses the release")
    # Hard guards act at once.
    max_error_rate: float = Field(0.2, gt=0, le=1,
                                  description="hard guard: candidate error rate that rolls back at once")
    guard_min_requests: int = Field(20, ge=1, description="candidate requests (or pairs) before the hard guard may act")
    guard_alpha: float = Field(0.001, gt=0, lt=0.5, description="the hard guard also needs the candidate's share of "
                                                               "errors to exceed its traffic share at this level")
    # Environment health: hold (no step advance, no hard guard) while the stable itself is unwell.
    health_window_seconds: float = duration(15, description="recent stretch over which the stable's health is read")
    health_factor: float = Field(3.0, gt=1, description="hold when the stable's recent error rate is confidently above "
                                                        "this multiple of its own baseline in this release")
    health_min_rate: float = Field(0.02, ge=0, lt=1, description="a stable error rate confidently below this is "
                                                                "always healthy")
    health_alpha: float = Field(0.001, gt=0, lt=0.5, description="confidence of the 'stable unhealthy' call")
    max_overload_rate: float = Field(0.02, ge=0, lt=1, description="hold when more than this share of recent requests "
                                                                  "got the pool's overload answer")
    max_hold_seconds: float = duration(900, description="holding this long pauses the release")
    # Low traffic: what the release does when a step cannot decide within its time.
    low_traffic: Literal["lengthen", "shadow", "none"] = Field(
        "shadow", description="when a step could not decide within max_window_seconds at the recent traffic: "
                              "keep the candidate in 'shadow' with every request mirrored (no user sees it) until "
                              "the paired judge promotes it (no canary steps) or rolls it back, pausing past the "
                              "announced time; 'lengthen' every step to the plan's time (the judge's window "
                              "limit grows with it); or 'none'")
    decide_quantile: float = Field(0.9, gt=0, lt=1, description="the announced time lets this share of healthy "
                                                               "candidates decide")

    @model_validator(mode="after")
    def _weights(self) -> "AnalysisPolicy":
        if self.sprt_weight + self.large_effect_weight > 1 + 1e-9:
            raise ValueError(f"sprt_weight ({self.sprt_weight}) + large_effect_weight ({self.large_effect_weight}) "
                             f"must not exceed 1: they share one e-value average with the Beta mixture")
        return self

    @field_validator("latency_quantiles")
    @classmethod
    def _quantiles(cls, qs: list[float]) -> list[float]:
        if any(not 0 < q < 1 for q in qs):
            raise ValueError("each latency quantile must lie strictly between 0 and 1, e.g. 0.99")
        if len(set(qs)) != len(qs):
            raise ValueError("latency quantiles must be unique")
        return sorted(qs)

    @field_validator("latency_metrics")
    @classmethod
    def _unique_kinds(cls, kinds: list[str]) -> list[str]:
        if len(set(kinds)) != len(kinds):
            raise ValueError("latency metrics must be unique")
        return kinds
