"""The release as an immutable value, and what the controller observed about it."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, TypedDict

from controller.analysis.types import Verdict
from controller.domain.phases import Phase


class UserAction(StrEnum):
    PROMOTE = "promote"
    ABORT = "abort"
    PAUSE = "pause"
    RESUME = "resume"


class ReleaseStatus(TypedDict, total=False):
    """What the controller learnt about a release, stored as JSON with it."""
    build: dict[str, Any]        # quantized build: version, report (quality), quantization, run_id
    deployment: dict[str, Any]   # what the candidate track serves: version, quantization, reason
    analysis: dict[str, Any]     # the analyzer's state (plain JSON, passed in and out)
    verdict: dict[str, Any]      # the last verdict: decision, reason, evidence, at
    job: dict[str, Any]          # the running long work: kind, state, progress
    plan: dict[str, Any]         # the low-traffic plan acted on (domain/low_traffic.py)


@dataclass(frozen=True)
class Release:
    id: str
    model: str
    candidate_version: str
    stable_version: str | None
    phase: Phase
    phase_started_at: datetime
    step_index: int = 0
    paused_from: Phase | None = None
    requested_action: UserAction | None = None
    status: ReleaseStatus = field(default_factory=lambda: ReleaseStatus())
    reason: str = ""
    row_version: int = 1
    settled: bool = True          # effects of a terminal phase applied (False until they are)

    def evolve(self, **changes: Any) -> "Release":
        return replace(self, **changes)


@dataclass(frozen=True)
class BuildOutcome:
    """Result of the quantization stage (observe_build)."""
    ok: bool
    version: str | None = None
    report: dict[str, Any] = field(default_factory=dict)
    error: str = ""


@dataclass(frozen=True)
class GateOutcome:
    ok: bool
    reason: str


@dataclass(frozen=True)
class DeployOutcome:
    state: str            # "ready" | "starting" | "failed"
    detail: str = ""


@dataclass(frozen=True)
class Observations:
    now: datetime
    build: BuildOutcome | None = None
    gate: GateOutcome | None = None
    deployment: DeployOutcome | None = None
    verdict: Verdict | None = None
    champion: str | None = None           # registry alias champion (promoting)
    serving_version: str | None = None    # the version the candidate track serves
    candidate_weight: float | None = None  # the router's real share for the candidate (rolling back)
    planning: bool = False                # the low-traffic plan is still being estimated (deploying)
    candidate_down: str | None = None     # why the candidate's server no longer serves (shadow, canary)


@dataclass(frozen=True)
class Decision:
    """The next state of a release and why. `new_window` asks analysis to start counting afresh."""
    phase: Phase
    step_index: int
    reason: str = ""
    paused_from: Phase | None = None
    new_window: bool = False
    clear_action: bool = False

    def changes(self, release: Release) -> bool:
        return (self.phase, self.step_index) != (release.phase, release.step_index) or self.clear_action
