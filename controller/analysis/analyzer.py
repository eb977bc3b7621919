"""The stateful side of analysis: windows over cumulative counters, kept as JSON state.

The reconcile loop calls start_window when the shadow phase or a canary step begins and
judge at every tick; it stores the returned state in the release row and passes it back,
so a controller restart resumes with the same baselines and evidence.
"""
from __future__ import annotations

import logging
import math
from datetime import datetime
from typing import Any

from controller.analysis import counts, health
from controller.analysis.judge import evaluate
from controller.analysis.providers.base import MetricProvider
from controller.analysis.thresholds import fix_thresholds
from controller.analysis.types import Decision, Measurement, Verdict, Window
from policies.analysis import AnalysisPolicy

log = logging.getLogger(__name__)
STATE_VERSION = 1
# The JSON analysis state kept in the release row, and its parts (windows, health).
State = dict[str, Any]


class Analyzer:
    def __init__(self, provider: MetricProvider, cfg: AnalysisPolicy) -> None:
        self.provider = provider
        self.cfg = cfg

    def start_window(self, model: str, release_id: str, canary_share: float, now: datetime, state: State) -> State:
        """Close the current window (its evidence is kept) and open one at `canary_share`."""
        if not 0 <= canary_share < 1:
            raise ValueError(f"canary_share must lie in [0, 1), got {canary_share}")
        st = _normalised(state)
        if st["current"] is not None:
            closed = self._close(model, release_id, st, now)
            if closed is not None:
                st["closed"].append(counts.window_to_dict(closed))
        if canary_share > 0 and st["thresholds"] is None:
            st["thresholds"], st["threshold_notes"] = fix_thresholds(self.provider, model, release_id, self.cfg)
        st["current"] = _new_window(canary_share, now)
        st["inconclusive_since"] = None
        log.info("analysis.window_started", extra={"model": model, "release": release_id,
                                                   "canary_share": canary_share, "at": now.isoformat()})
        return st

    def judge(self, model: str, release_id: str, phase: str, now: datetime, state: State) -> tuple[Verdict, State]:
        st = _normalised(state)
        cur = st["current"]
        if cur is None:
            return self._inconclusive(st, now, "no analysis window started")
        waited = (now - _parse(cur["started_at"])).total_seconds()
        if waited < self.cfg.settle_seconds:
            return Verdict(Decision.CONTINUE, f"settling: {waited:.0f} of {self.cfg.settle_seconds:.0f} s"), st
        reading = self.provider.read(model, release_id, st["thresholds"] or {})
        problem = _reading_problem(reading, phase)
        if problem:
            return self._inconclusive(st, now, problem)
        env, st["health"] = health.update(st["health"], reading, now, self.cfg)
        if cur["baseline"] is None:
            cur["baseline"], cur["baseline_at"] = counts.measurement_to_dict(reading), now.isoformat()
            return Verdict(Decision.CONTINUE, "window baseline taken"), _clear_inconclusive(st)
        try:
            window = _window(cur, reading, now)
        except counts.CounterReset as exc:
            return self._restart_after_reset(st, reading, now, str(exc))
        cur["last"] = counts.window_to_dict(window)
        windows = [counts.window_from_dict(w) for w in st["closed"]] + [window]
        verdict = evaluate(windows, self.cfg, phase=phase, healthy=env.healthy)
        verdict = Verdict(verdict.decision, verdict.reason, {**verdict.evidence, **_context(st, windows),
                                                             "environment": {"healthy": env.healthy,
                                                                             "reason": env.reason, **env.evidence}})
        if verdict.decision == Decision.INCONCLUSIVE:
            return self._inconclusive(st, now, verdict.reason, verdict.evidence)
        return self._environment(verdict, env, st["health"], now), _clear_inconclusive(st)

    def _environment(self, verdict: Verdict, env: health.Health, hs: State, now: datetime) -> Verdict:
        """While the environment is unwell, what would continue or advance holds instead (a
        rollback by the count tests or an SLO, and a pause, stand: they stay valid); after it
        recovers, promotion waits `min_soak_seconds` of health."""
        if verdict.decision not in (Decision.CONTINUE, Decision.PROMOTE):
            return verdict
        if not env.healthy:
            held = (now - _parse(hs["unhealthy_since"])).total_seconds()
            if held > self.cfg.max_hold_seconds:
                return Verdict(Decision.PAUSE, f"held for {held:.0f} s: {env.reason}", verdict.evidence)
            return Verdict(Decision.HOLD, f"held ({held:.0f} s): {env.reason}", verdict.evidence)
        since = hs.get("last_unhealthy_at")
        calm = (now - _parse(since)).total_seconds() if since else math.inf
        if verdict.decision == Decision.PROMOTE and calm < self.cfg.min_soak_seconds:
            return Verdict(Decision.CONTINUE, f"environment healthy again for {calm:.0f} of "
                                              f"{self.cfg.min_soak_seconds:.0f} s", verdict.evidence)
        return verdict

    def _close(self, model: str, release_id: str, st: State, now: datetime) -> Window | None:
        """The current window's final counts: read now, or the last judged counts if reading fails."""
        cur = st["current"]
        if cur["baseline"] is not None:
            reading = self.provider.read(model, release_id, st["thresholds"] or {})
            if reading.ok:
                try:
                    return _window(cur, reading, now)
                except counts.CounterReset:
                    pass
        return counts.window_from_dict(cur["last"]) if cur["last"] else None

    def _restart_after_reset(self, st: State, reading: Measurement, now: datetime, why: str) -> tuple[Verdict, State]:
        cur = st["current"]
        if cur["last"]:
            st["closed"].append(cur["last"])
        st["current"] = {**_new_window(cur["canary_share"], _parse(cur["started_at"])),
                         "baseline": counts.measurement_to_dict(reading), "baseline_at": now.isoformat()}
        log.warning("analysis.counter_reset", extra={"reason": why})
        return self._inconclusive(st, now, f"counters reset ({why}); window restarted")

    def _inconclusive(self, st: State, now: datetime, reason: str,
                      evidence: dict[str, Any] | None = None) -> tuple[Verdict, State]:
        """Missing metrics are no verdict; missing for too long pauses the release."""
        since = st["inconclusive_since"] or now.isoformat()
        st["inconclusive_since"] = since
        lasted = (now - _parse(since)).total_seconds()
        if lasted > self.cfg.max_inconclusive_seconds:
            return Verdict(Decision.PAUSE, f"metrics inconclusive for {lasted:.0f} s: {reason}", evidence or {}), st
        return Verdict(Decision.INCONCLUSIVE, reason, evidence or {}), st


def _window(cur: State, reading: Measurement, now: datetime) -> Window:
    stable, candidate, shadow = counts.subtract(reading, counts.measurement_from_dict(cur["baseline"]))
    elapsed = (now - _parse(cur["baseline_at"])).total_seconds()
    return Window(float(cur["canary_share"]), max(elapsed, 0.0), stable, candidate, shadow)


def _reading_problem(reading: Measurement, phase: str) -> str | None:
    if not reading.ok:
        return f"metrics unavailable: {reading.error or 'no per-track counts'}"
    if phase == "shadow" and reading.shadow is None:
        return "metrics unavailable: no shadow pair series"
    return None


def _context(st: State, windows: list[Window]) -> dict[str, Any]:
    ctx: dict[str, Any] = {"windows": len(windows)}
    if st["thresholds"] is not None:
        ctx["latency_thresholds"] = st["thresholds"]
    return ctx


def _new_window(share: float, started: datetime) -> State:
    return {"canary_share": share, "started_at": started.isoformat(), "baseline": None, "baseline_at": None,
            "last": None}


def _normalised(state: State | None) -> State:
    """A deep-enough copy with every key present, so callers' dicts are never mutated."""
    st = dict(state or {})
    if st.get("version", STATE_VERSION) != STATE_VERSION:
        raise ValueError(f"analysis state version {st.get('version')} is not {STATE_VERSION}")
    cur = st.get("current")
    return {"version": STATE_VERSION, "closed": list(st.get("closed", [])),
            "current": dict(cur) if cur else None, "thresholds": st.get("thresholds"),
            "threshold_notes": list(st.get("threshold_notes", [])),
            "inconclusive_since": st.get("inconclusive_since"),
            "health": dict(st.get("health") or health.initial_state())}


def _clear_inconclusive(st: State) -> State:
    st["inconclusive_since"] = None
    return st


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts)
