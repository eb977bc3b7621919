"""What `relctl release get/watch` and `relctl status` draw (rich), from one API snapshot each.

Every view is a pure function of the JSON `GET /api/v1/releases/{id}` returned (phase, step,
weights, status) and of the moment it was read, so what one screen shows belongs together:
the weights are those the stored phase asks for, the counts those of the judge's last reading,
the job's progress the one the same tick copied into the release.
"""
from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from typing import Any, Callable

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from controller.report.extract import TERMINAL, verdict_points, window_rows

PHASE_STYLE = {"succeeded": "bold green", "rolled_back": "bold red", "failed": "bold red", "aborted": "red",
               "rolling_back": "bold red", "paused": "yellow", "canary": "bold cyan", "shadow": "cyan",
               "promoting": "bold green"}


def release_view(release: dict[str, Any], now: datetime | None = None) -> RenderableType:
    """The whole picture of one release, as one rich renderable."""
    now = now or datetime.now(timezone.utc)
    parts: list[RenderableType] = [_header(release, now)]
    status = release.get("status") or {}
    for section in (_plan(status.get("plan")), _job(status.get("job") or {}, now), _tracks(release),
                    _evidence(status.get("verdict") or {})):
        if section is not None:
            parts.append(section)
    title = f"{release['id']} · {release['model']} v{release['candidate_version']}"
    return Panel(Group(*parts), title=title, title_align="left")


def _header(release: dict, now: datetime) -> RenderableType:
    phase = release["phase"]
    line = Text.assemble(("phase ", "dim"), (phase, PHASE_STYLE.get(phase, "bold")))
    if phase == "canary" or release.get("step_index"):
        line.append(f"  step {release.get('step_index', 0)}")
    if release.get("paused_from"):
        line.append(f"  (paused from {release['paused_from']})", style="yellow")
    started = release.get("phase_started_at")
    if started:
        line.append(f"  for {_duration((now - datetime.fromisoformat(started)).total_seconds())}", style="dim")
    stable = release.get("stable_version") or "none"
    lines = [line, Text(f"candidate v{release['candidate_version']} · stable v{stable}", style="dim")]
    if release.get("requested_action"):
        lines.append(Text(f"requested: {release['requested_action']}", style="yellow"))
    if release.get("reason"):
        lines.append(Text(release["reason"], style="italic"))
    return Group(*lines)


def plan_line(plan: dict | None) -> str:
    """The low-traffic plan the release acts on, and the time to promotion it announced."""
    if not plan:
        return ""
    if not plan.get("planned"):
        return f"plan: none ({plan.get('why', 'no estimate')}); the policy's steps"
    rps, announced = plan.get("requests_per_second"), plan.get("announced_seconds")
    acting = {"shadow": "kept in shadow, every request mirrored, no canary steps",
              "lengthen": f"canary steps lengthened to {plan.get('step_seconds') or 0:.0f} s",
              "none": "the policy's steps"}.get(plan.get("action", ""), str(plan.get("action")))
    expected = f"promotion expected within {announced:.0f} s" if announced is not None else "no bounded time"
    return f"plan at {rps:.3g} req/s: {acting}; {expected}"


def _plan(plan: dict | None) -> RenderableType | None:
    line = plan_line(plan)
    return Text.assemble(("low traffic ", "dim"), line) if line else None


def job_progress(job: dict, now: datetime | None = None) -> tuple[str, int | None, int | None]:
    """(label, done, total) of the job's current sub-step; done/total None without a count.

    The label names what is being worked on (each evaluation server's state, the concurrency
    level measured) and, given `now`, how long the sub-step has run (from its stored start)."""
    label, done, total = _count(job)
    item = ", ".join(f"{name} {state}" for name, state in job["servers"].items()) if job.get("servers") \
        else job.get("item")
    if item:
        label += f" ({item})"
    if now is not None and job.get("started_at"):
        label += f" · {_duration((now - datetime.fromisoformat(job['started_at'])).total_seconds())}"
    return label, done, total


def _count(job: dict) -> tuple[str, int | None, int | None]:
    step, detail = job.get("step") or job.get("state") or "", job.get("detail") or ""
    q = job.get("quantize") or {}
    if step == "quantizing" and isinstance(q.get("total"), int):
        done = q.get("layer", -1) + (1 if q.get("event") == "layer_done" else 0)
        return f"quantizing {q.get('stage', 'layers')}: layer {max(done, 0)}/{q['total']}", max(done, 0), q["total"]
    if isinstance(job.get("done"), int) and isinstance(job.get("total"), int):
        return f"{step} {detail}".strip() + f": {job['done']}/{job['total']}", job["done"], job["total"]
    return f"{step} — {detail}" if detail else step, None, None


def _job(job: dict, now: datetime) -> RenderableType | None:
    if not job:
        return None
    label, done, total = job_progress(job, now)
    attempt = f" (attempt {job['attempt']})" if job.get("attempt", 1) > 1 else ""
    rows: list[RenderableType] = [Text.assemble(("job ", "dim"), (f"{job.get('kind', '')} ", "bold"),
                                                (f"{job.get('state', '')}{attempt}: ", "dim"), label)]
    if total:
        rows.append(ProgressBar(total=total, completed=done or 0, width=40))
    return Group(*rows)


def _tracks(release: dict) -> RenderableType | None:
    """Weights and the judge's last counts per track (the current analysis window)."""
    weights = release.get("weights")
    windows = window_rows((release.get("status") or {}).get("analysis") or {})
    if weights is None and not windows:
        return None
    table = Table(title=windows[-1].label + f", {_duration(windows[-1].seconds)}" if windows else None,
                  title_justify="left", box=None, pad_edge=False)
    for name, justify in (("track", "left"), ("weight", "right"), ("requests", "right"), ("errors", "right"),
                          ("error rate", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    last = windows[-1] if windows else None
    for track in ("stable", "candidate"):
        req = getattr(last, f"{track}_requests") if last else None
        err = getattr(last, f"{track}_errors") if last else None
        table.add_row(track, _weight(weights, track), "—" if req is None else str(req),
                      "—" if err is None else str(err), f"{err / req:.2%}" if req else "—")
    return table


def _weight(weights: dict | None, track: str) -> str:
    if weights is None:
        return "—"
    text = f"{weights.get(track, 0.0):g}%"
    if track == "candidate" and weights.get("mirror_percent"):
        text += f" (+{weights['mirror_percent']:g}% mirrored)"
    return text


def _evidence(verdict: dict) -> RenderableType | None:
    """Each test's e-value against its threshold; the bar is on a log scale (e-values multiply)."""
    if not verdict:
        return None
    at = datetime.fromisoformat(verdict["at"]) if verdict.get("at") else datetime.now(timezone.utc)
    points = verdict_points(at, verdict)
    lines: list[RenderableType] = [Text.assemble(("judge ", "dim"), (verdict.get("decision", "?"), "bold"),
                                                 (f" — {verdict.get('reason', '')}" if verdict.get("reason") else ""))]
    if points:
        table = Table(box=None, pad_edge=False)
        for name in ("test", "e-value", "threshold", "evidence"):
            table.add_column(name, justify="left" if name in ("test", "evidence") else "right")
        for p in points:
            table.add_row(p.test, f"{p.e_value:.3g}", f"{p.threshold:.3g}",
                          ProgressBar(total=1.0, completed=log_share(p.e_value, p.threshold), width=24))
        lines.append(table)
    return Group(*lines)


def log_share(e_value: float, threshold: float) -> float:
    """How far an e-value has come towards its threshold on a log scale: 0 at 1 (no evidence), 1 at it."""
    if threshold <= 1 or e_value <= 1:
        return 0.0
    return min(1.0, math.log(e_value) / math.log(threshold))


def progress_line(release: dict[str, Any], now: datetime | None = None) -> str:
    """One plain line for logs and the demo: phase, step, weights, counts, job or judge; the job's
    elapsed time only given `now` (a caller printing changed lines compares them without it)."""
    w = release.get("weights")
    weights = "—" if w is None else f"{w['stable']:g}/{w['candidate']:g}" + (
        f" +{w['mirror_percent']:g}% mirrored" if w.get("mirror_percent") else "")
    parts = [f"phase {release['phase']:<12} step {release.get('step_index', 0)}", f"weights stable/candidate {weights}"]
    windows = window_rows((release.get("status") or {}).get("analysis") or {})
    if windows and release["phase"] not in TERMINAL:
        last = windows[-1]
        parts.append(f"requests {last.stable_requests}/{last.candidate_requests} "
                     f"errors {last.stable_errors}/{last.candidate_errors}")
    detail = _one_line(release.get("status") or {}, now)
    return " · ".join(parts + ([detail] if detail else []))


def status_table(releases: list[dict[str, Any]], now: datetime | None = None) -> Table:
    """Active releases, one row each (the API's list, read once)."""
    now = now or datetime.now(timezone.utc)
    table = Table(title="active releases", title_justify="left")
    for name in ("id", "model", "candidate", "stable", "phase", "step", "in phase", "weights", "progress / judge"):
        table.add_column(name)
    for r in releases:
        started = r.get("phase_started_at")
        age = _duration((now - datetime.fromisoformat(started)).total_seconds()) if started else ""
        w = r.get("weights")
        weights = f"{w['stable']:g}/{w['candidate']:g}" + (" +mirror" if w.get("mirror_percent") else "") if w else "—"
        table.add_row(r["id"], r["model"], r["candidate_version"], r.get("stable_version") or "—",
                      Text(r["phase"], style=PHASE_STYLE.get(r["phase"], "")), str(r.get("step_index", 0)), age,
                      weights, _one_line(r.get("status") or {}, now))
    if not releases:
        table.caption = "none"
    return table


def _one_line(status: dict, now: datetime | None) -> str:
    if status.get("job"):
        return job_progress(status["job"], now)[0]
    verdict = status.get("verdict") or {}
    return f"judge: {verdict['decision']}" if verdict.get("decision") else ""


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def watch(fetch: Callable[[], dict[str, Any]], console: Console, interval: float = 2.0,
          sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Redraw the release from a fresh snapshot every `interval` until it ends; returns the last one."""
    release = fetch()
    with Live(release_view(release), console=console, auto_refresh=False) as live:
        while release["phase"] not in TERMINAL:
            sleep(interval)
            release = fetch()
            live.update(release_view(release), refresh=True)
    return release
