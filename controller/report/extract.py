"""What a release report shows, extracted from the API's JSON (pure: dicts in, values out).

Inputs are exactly what the REST API serves: the release (`GET /api/v1/releases/{id}`), its
events (`…/events`), the policy's canary steps and, when available, audit records
(`GET /api/v1/audit?release_id=…`). Missing parts give empty sections, never an error, so
a report can be drawn at any moment of a release's life.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

TERMINAL = frozenset({"succeeded", "rolled_back", "failed", "aborted"})
# Phases in which the candidate takes no live traffic (weights are the stable's 100 %).
STABLE_ONLY = frozenset({"pending", "quantizing", "evaluating", "deploying", "rolling_back", "rolled_back",
                         "failed", "aborted"})
USER_REASONS = ("by user", "resumed into")


@dataclass(frozen=True)
class PhaseChange:
    at: datetime
    from_phase: str | None
    to_phase: str
    step: int
    reason: str
    cause: str                  # "controller", "user (pause requested)", "registry"


@dataclass(frozen=True)
class WeightPoint:
    at: datetime
    candidate: float | None     # percent of live traffic; None when the policy's steps are unknown
    mirror: bool                # live traffic mirrored to the candidate (shadow)


@dataclass(frozen=True)
class EvidencePoint:
    at: datetime
    test: str                   # "errors", "e2e_p99", … or "shadow"
    e_value: float
    threshold: float
    decision: str


@dataclass(frozen=True)
class WindowRow:
    """One stretch of constant split: a shadow phase or a canary step."""
    label: str
    share: float
    seconds: float
    stable_requests: int
    stable_errors: int
    candidate_requests: int
    candidate_errors: int
    shadow_pairs: int = 0
    latency_over: dict = field(default_factory=dict)   # (track, key) -> requests over the threshold of key


SPEED_FIGURES = ("ttft_p50_ms", "ttft_p99_ms", "itl_p50_ms", "itl_p99_ms", "output_tokens_per_s")


@dataclass(frozen=True)
class SpeedLevel:
    """One concurrency level of the speed gate: each side's figures (SPEED_FIGURES, requests, errors)."""
    concurrency: int
    parent: dict
    build: dict


@dataclass(frozen=True)
class SpeedSummary:
    measured: bool
    decision: str               # "passed" or "failed: <the policy's on_slower>"; "" when not measured
    reason: str                 # the gate's finding, or why nothing was measured
    levels: list[SpeedLevel] = field(default_factory=list)   # empty in reports kept before the figures


@dataclass(frozen=True)
class ReportData:
    release_id: str
    model: str
    candidate_version: str
    stable_version: str | None
    phase: str
    step_index: int
    reason: str
    active: bool
    changes: list[PhaseChange]
    weights: list[WeightPoint]
    evidence: list[EvidencePoint]
    windows: list[WindowRow]
    verdict: dict
    quality: dict
    build: dict
    deployment: dict
    audit: dict
    latency_thresholds: dict = field(default_factory=dict)   # "e2e_p99" -> seconds, fixed from the stable
    speed: SpeedSummary = field(default_factory=lambda: SpeedSummary(False, "", "the release has no build report"))


def extract(release: dict, events: list[dict], canary_steps: list[float] | None = None,
            audit: list[dict] | None = None) -> ReportData:
    status = release.get("status") or {}
    changes = phase_changes(events)
    build = status.get("build") or {}
    return ReportData(
        release_id=release["id"], model=release["model"], candidate_version=release["candidate_version"],
        stable_version=release.get("stable_version"), phase=release["phase"],
        step_index=int(release.get("step_index") or 0), reason=release.get("reason") or "",
        active=release["phase"] not in TERMINAL, changes=changes,
        weights=weights_over_time(changes, canary_steps), evidence=evidence_points(events, status),
        windows=window_rows(status.get("analysis") or {}), verdict=status.get("verdict") or {},
        quality=(build.get("report") or {}).get("quality") or {}, build=build,
        deployment=status.get("deployment") or {}, audit=audit_summary(audit),
        latency_thresholds=dict((status.get("analysis") or {}).get("thresholds") or {}),
        speed=speed_summary(build))


def speed_summary(build: dict) -> SpeedSummary:
    """The speed gate as the build report keeps it (quantize_stage.speed_document), or why there is none."""
    report = build.get("report")
    if not report:
        return SpeedSummary(False, "", "the release has no build report")
    speed = report.get("speed")
    if not speed:
        return SpeedSummary(False, "", "the build report has no speed measurement")
    if not speed.get("measured", True):
        return SpeedSummary(False, "", speed.get("reason") or "no reason recorded")
    decision = "passed" if speed.get("passed") else f"failed: {speed.get('action', '?')}"
    cmp = speed.get("comparison") or {}
    levels = [SpeedLevel(int(p.get("concurrency", 0)), p, b)
              for p, b in zip(cmp.get("parent") or [], cmp.get("build") or [])]
    return SpeedSummary(True, decision, (speed.get("reason") or "").split("\n")[0].rstrip(":"), levels)


def phase_changes(events: list[dict]) -> list[PhaseChange]:
    """The release's creation and every transition, each with what caused it."""
    out, pending_actions = [], []
    for ev in events:
        kind = ev.get("kind")
        if kind == "action":
            pending_actions.append(ev.get("reason") or "action")
        elif kind in ("created", "transition") and ev.get("to_phase"):
            out.append(PhaseChange(_time(ev["at"]), ev.get("from_phase"), ev["to_phase"],
                                   int((ev.get("data") or {}).get("step", 0)), ev.get("reason") or "",
                                   _cause(ev, pending_actions)))
            pending_actions = []
    return out


def _cause(ev: dict, actions: list[str]) -> str:
    if ev["kind"] == "created":
        return "registry" if "registered" in (ev.get("reason") or "") else "created"
    if actions and any(word in (ev.get("reason") or "") for word in USER_REASONS):
        return f"user ({actions[-1]})"
    return "controller"


def weight_of(phase: str, step: int, previous: WeightPoint | None,
              steps: list[float] | None) -> tuple[float | None, bool]:
    """The candidate's share of live traffic that a phase asks for (same table as the router)."""
    if phase in STABLE_ONLY:
        return 0.0, False
    if phase == "shadow":
        return 0.0, True
    if phase == "canary":
        return (float(steps[step]) if steps and 0 <= step < len(steps) else None), False
    if phase in ("promoting", "succeeded"):
        return 100.0, False
    # paused: the router keeps the split it had
    return (previous.candidate, previous.mirror) if previous else (0.0, False)


def weights_over_time(changes: list[PhaseChange], steps: list[float] | None) -> list[WeightPoint]:
    points: list[WeightPoint] = []
    for ch in changes:
        cand, mirror = weight_of(ch.to_phase, ch.step, points[-1] if points else None, steps)
        points.append(WeightPoint(ch.at, cand, mirror))
    return points


def evidence_points(events: list[dict], status: dict) -> list[EvidencePoint]:
    """The judge's e-values where a verdict was recorded: in transition events and the latest verdict."""
    recorded = [(ev["at"], (ev.get("data") or {}).get("verdict")) for ev in events]
    latest = status.get("verdict") or {}
    if latest.get("at"):
        recorded.append((latest["at"], latest))
    points = []
    for at, verdict in recorded:
        if verdict:
            points += verdict_points(_time(at), verdict)
    return sorted(set(points), key=lambda p: (p.at, p.test))


def verdict_points(at: datetime, verdict: dict) -> list[EvidencePoint]:
    evidence, decision = verdict.get("evidence") or {}, verdict.get("decision", "")
    tests = dict(evidence.get("metrics") or {})
    if isinstance(evidence.get("test"), dict):
        tests["shadow"] = evidence["test"]
    return [EvidencePoint(at, name, float(t["e_value"]), float(t["threshold"]), decision)
            for name, t in tests.items() if _numeric(t, "e_value") and _numeric(t, "threshold")]


def _numeric(d: dict, key: str) -> bool:
    return isinstance(d.get(key), (int, float))


def window_rows(analysis: dict) -> list[WindowRow]:
    """Closed windows and the current one's last counts, oldest first."""
    windows = list(analysis.get("closed") or [])
    current = analysis.get("current") or {}
    if current.get("last"):
        windows.append(current["last"])
    return [_row(w) for w in windows]


def _row(w: dict) -> WindowRow:
    share = float(w.get("canary_share", 0.0))
    stable, cand = w.get("stable") or {}, w.get("candidate") or {}
    over = {(track, key): int(n) for track, t in (("stable", stable), ("candidate", cand))
            for key, n in (t.get("latency_over") or {}).items()}
    return WindowRow(label="shadow" if share == 0 else f"canary {share:.0%}", share=share,
                     seconds=float(w.get("elapsed_seconds", 0.0)),
                     stable_requests=int(stable.get("requests", 0)), stable_errors=int(stable.get("errors", 0)),
                     candidate_requests=int(cand.get("requests", 0)), candidate_errors=int(cand.get("errors", 0)),
                     shadow_pairs=int((w.get("shadow") or {}).get("pairs", 0)), latency_over=over)


def audit_summary(records: list[dict] | None) -> dict:
    """Answers the gateway recorded for the release, by track and mode, and by status class."""
    if not records:
        return {}
    by_track = Counter(f"{r.get('track', '?')} {r.get('mode', '?')}" for r in records)
    by_status = Counter(f"{int(r.get('status', 0)) // 100}xx" for r in records)
    times = sorted(r["at"] for r in records if r.get("at"))
    return {"records": len(records), "by_track": dict(sorted(by_track.items())),
            "by_status": dict(sorted(by_status.items())), "first": times[0] if times else None,
            "last": times[-1] if times else None}


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)
