"""One self-contained HTML page per release: tables plus the charts as base64 PNGs (no external files)."""
from __future__ import annotations

import base64
import threading
from collections import OrderedDict
from html import escape

from controller.report.charts import timeline_png, windows_png
from controller.report.extract import SPEED_FIGURES, ReportData, SpeedLevel

STYLE = """body{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}.num{text-align:right}img{max-width:100%}.muted{color:#777}
.phase{font-weight:bold}.active{color:#b35900}.succeeded{color:#2a7a2a}.rolled_back,.failed,.aborted{color:#b00}"""
_CACHE: OrderedDict[str, bytes | None] = OrderedDict()   # a live page redraws a chart only when its data moved
_CACHE_SIZE, _CACHE_LOCK = 64, threading.Lock()
QUALITY_ROWS = (("evaluated_on", "evaluated on"), ("quant_method", "method"),
                ("parent_perplexity", "parent perplexity"), ("build_perplexity", "build perplexity"),
                ("perplexity_increase_pct", "perplexity increase (%)"), ("parent_accuracy", "parent accuracy (%)"),
                ("build_accuracy", "build accuracy (%)"), ("accuracy_drop_pct", "accuracy drop (points)"),
                ("eval_items", "evaluation items"), ("weight_size_ratio", "quantized layers size ratio"),
                ("quantization_seconds", "quantization time (s)"), ("peak_memory_mb", "peak memory (MB)"))


def render_html(data: ReportData, refresh_seconds: int | None = None) -> str:
    """The report; with `refresh_seconds` an active release's page reloads itself (live view)."""
    refresh = (f'<meta http-equiv="refresh" content="{int(refresh_seconds)}">'
               if refresh_seconds and data.active else "")
    timeline = _cached(f"t{data.release_id}{data.changes}{data.weights}{data.evidence}", timeline_png, data)
    parts = [_summary(data), _img(timeline, "timeline"), _changes(data), _windows(data),
             _verdict(data), _quality(data), _speed(data), _audit(data)]
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">{refresh}'
            f"<title>relctl release {escape(data.release_id)}</title><style>{STYLE}</style></head>"
            f'<body data-release="{escape(data.release_id)}" data-phase="{escape(data.phase)}">'
            + "".join(p for p in parts if p) + "</body></html>")


def _summary(d: ReportData) -> str:
    state = "active" if d.active else d.phase
    rows = [("model", d.model), ("candidate version", d.candidate_version), ("stable version", d.stable_version),
            ("build", d.build.get("version")), ("deployed", _deployed(d.deployment)), ("reason", d.reason)]
    return (f"<h1>Release {escape(d.release_id)}</h1>"
            f'<p>phase <span id="phase" class="phase {state}">{escape(d.phase)}</span>'
            + (f" (step {d.step_index + 1})" if d.phase == "canary" else "")
            + ("" if d.active else " — finished") + "</p>" + _table(["", ""], rows))


def _deployed(dep: dict) -> str | None:
    if not dep:
        return None
    return f"version {dep.get('version')} ({dep.get('quantization')}): {dep.get('reason', '')}"


def _changes(d: ReportData) -> str:
    rows = [(c.at.strftime("%H:%M:%S"), f"{c.from_phase or '—'} → {c.to_phase}",
             c.step + 1 if c.to_phase == "canary" else "", c.cause, c.reason) for c in d.changes]
    return "<h2>Phase changes</h2>" + _table(["time (UTC)", "change", "step", "caused by", "reason"], rows)


def _windows(d: ReportData) -> str:
    if not d.windows:
        return ""
    rows = [(w.label, f"{w.seconds:.0f}", w.stable_requests, w.stable_errors, _rate(w.stable_errors, w.stable_requests),
             w.candidate_requests, w.candidate_errors, _rate(w.candidate_errors, w.candidate_requests),
             w.shadow_pairs or "") for w in d.windows]
    head = ["window", "s", "stable req", "stable err", "stable err %", "cand req", "cand err", "cand err %",
            "shadow pairs"]
    png = _cached(f"w{d.release_id}{d.windows}", windows_png, d)
    return ("<h2>Requests and errors per track</h2>" + (_img(png, "windows") if png else "") + _table(head, rows)
            + _latency(d))


def _latency(d: ReportData) -> str:
    """Requests slower than each threshold fixed from the stable's latency, per track and window."""
    keys = sorted({key for w in d.windows for _, key in w.latency_over} | set(d.latency_thresholds))
    rows = [(w.label, key, d.latency_thresholds.get(key),
             _over(w.latency_over.get(("stable", key)), w.stable_requests),
             _over(w.latency_over.get(("candidate", key)), w.candidate_requests))
            for w in d.windows if w.share > 0 for key in keys]
    if not rows:
        return ""
    return ("<h2>Latency per track</h2>"
            + _table(["window", "test", "threshold (s)", "stable over threshold", "candidate over threshold"], rows))


def _over(n: int | None, requests: int) -> str:
    return "" if n is None else f"{n} ({_rate(n, requests) or 0}%)"


def _rate(errors: int, requests: int) -> str:
    return f"{100 * errors / requests:.2f}" if requests else ""


def _verdict(d: ReportData) -> str:
    if not d.verdict:
        return ""
    rows = [(p.at.strftime("%H:%M:%S"), p.test, f"{p.e_value:.4g}", f"{p.threshold:.4g}", p.decision)
            for p in d.evidence]
    return ("<h2>Judge</h2>" + f"<p>latest verdict: <b>{escape(str(d.verdict.get('decision', '')))}</b> — "
            f"{escape(str(d.verdict.get('reason', '')))}</p>"
            + _table(["time (UTC)", "test", "e-value", "threshold", "decision"], rows))


def _quality(d: ReportData) -> str:
    if not d.quality:
        return ""
    rows = [(label, d.quality[key]) for key, label in QUALITY_ROWS if d.quality.get(key) is not None]
    return "<h2>Quality of the build</h2>" + _table(["", ""], rows)


SPEED_HEAD = ["concurrency", "", "TTFT p50 (ms)", "TTFT p99 (ms)", "ITL p50 (ms)", "ITL p99 (ms)",
              "output tokens/s", "failed requests"]


def _speed(d: ReportData) -> str:
    """The speed gate's figures per concurrency level: parent, build, and the build's change."""
    s = d.speed
    if not s.measured:
        return f'<h2>Speed of the build</h2><p id="speed" class="muted">not measured ({escape(s.reason)})</p>'
    why = f" — {escape(s.reason)}" if s.reason and s.decision != "passed" else ""
    verdict = f'<p id="speed">speed gate: <b>{escape(s.decision)}</b>{why}</p>'
    if not s.levels:
        return ("<h2>Speed of the build</h2>" + verdict
                + '<p class="muted">figures not kept in this release; see speed_gate.md on the build\'s MLflow run</p>')
    rows = [row for level in s.levels for row in _speed_rows(level)]
    return "<h2>Speed of the build</h2>" + verdict + _table(SPEED_HEAD, rows)


def _speed_rows(level: SpeedLevel) -> list[tuple]:
    def side(name: str, figures: dict) -> tuple:
        failed = f"{figures.get('errors', '?')}/{figures.get('requests', '?')}"
        return (level.concurrency, name, *(_figure(figures.get(k)) for k in SPEED_FIGURES), failed)
    change = tuple(_change(level.parent.get(k), level.build.get(k)) for k in SPEED_FIGURES)
    return [side("parent", level.parent), side("build", level.build), (level.concurrency, "build vs parent",
                                                                       *change, "")]


def _figure(value) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else "—"


def _change(parent, build) -> str:
    if not isinstance(parent, (int, float)) or not isinstance(build, (int, float)) or parent <= 0:
        return "—"
    return f"{(build / parent - 1) * 100:+.1f}%"


def _audit(d: ReportData) -> str:
    if not d.audit:
        return '<h2>Audit</h2><p class="muted">no audit records for this release</p>'
    a = d.audit
    rows = [("answers recorded", a["records"]), ("first", a["first"]), ("last", a["last"])]
    rows += [(f"track {k}", v) for k, v in a["by_track"].items()]
    rows += [(f"status {k}", v) for k, v in a["by_status"].items()]
    return "<h2>Audit</h2>" + _table(["", ""], rows)


def _table(head: list[str], rows: list[tuple]) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head) if any(head) else ""
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table>{'<tr>' + th + '</tr>' if th else ''}{body}</table>"


def _cell(value) -> str:
    if isinstance(value, float):
        return f'<td class="num">{value:.4g}</td>'
    if isinstance(value, int):
        return f'<td class="num">{value}</td>'
    return f"<td>{escape('' if value is None else str(value))}</td>"


def _img(png: bytes, name: str) -> str:
    return f'<img id="{name}" alt="{name}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _cached(key: str, draw, data: ReportData) -> bytes | None:
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    png = draw(data)
    with _CACHE_LOCK:
        _CACHE[key] = png
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return png
