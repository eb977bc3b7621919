"""PNG charts of a release (matplotlib's object API on the Agg canvas: no pyplot, no global state,
so the API can draw from several threads)."""
from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from controller.report.extract import ReportData

STABLE, CANDIDATE, THRESHOLD = "#4c72b0", "#dd8452", "#c44e52"


def timeline_png(data: ReportData) -> bytes:
    """Candidate weight over time with phase changes marked, and the judge's e-values against thresholds."""
    fig = Figure(figsize=(10, 5.6), dpi=96, layout="constrained")
    weights, evidence = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    _weights(weights, data)
    _evidence(evidence, data)
    for ax in (weights, evidence):
        for ch in data.changes:
            ax.axvline(ch.at, color="#999999", lw=0.6, ls=":")
    evidence.set_xlabel("time (UTC)")
    fig.autofmt_xdate()
    return _png(fig)


def _weights(ax, data: ReportData) -> None:
    known = [p for p in data.weights if p.candidate is not None]
    if known:
        ax.step([p.at for p in known], [p.candidate for p in known], where="post", color=CANDIDATE,
                label="candidate weight (%)")
        ax.step([p.at for p in known], [100 - p.candidate for p in known], where="post", color=STABLE,
                label="stable weight (%)")
    for a, b in zip(data.weights, data.weights[1:]):
        if a.mirror:
            ax.axvspan(a.at, b.at, color=CANDIDATE, alpha=0.12, lw=0)
    for ch in data.changes:
        ax.annotate(ch.to_phase if ch.to_phase != "canary" else f"canary {ch.step + 1}", (ch.at, 102),
                    rotation=60, fontsize=7, va="bottom", annotation_clip=False)
    ax.set_ylim(-3, 103)
    ax.set_ylabel("live traffic (%)")
    ax.legend(loc="center left", fontsize=8)


def _evidence(ax, data: ReportData) -> None:
    if not data.evidence:
        ax.text(0.5, 0.5, "no verdict with e-values recorded yet", ha="center", va="center",
                transform=ax.transAxes, fontsize=9, color="#666666")
        ax.set_yticks([])
        return
    for test in sorted({p.test for p in data.evidence}):
        pts = [p for p in data.evidence if p.test == test]
        ax.plot([p.at for p in pts], [max(p.e_value, 1e-6) for p in pts], "o-", ms=4, label=f"e-value ({test})")
        ax.plot([p.at for p in pts], [p.threshold for p in pts], "_", ms=14, mew=2, color=THRESHOLD)
    ax.plot([], [], "_", ms=14, mew=2, color=THRESHOLD, label="rollback threshold")
    ax.set_yscale("log")
    ax.set_ylabel("judge e-value")
    ax.legend(loc="upper left", fontsize=8)


def windows_png(data: ReportData) -> bytes | None:
    """Requests and errors per track in each analysis window (shadow, canary steps)."""
    if not data.windows:
        return None
    fig = Figure(figsize=(10, 3.4), dpi=96, layout="constrained")
    reqs, errs = fig.subplots(1, 2)
    xs = range(len(data.windows))
    labels = [w.label for w in data.windows]
    for ax, attr, title in ((reqs, "requests", "requests per track"), (errs, "errors", "errors per track")):
        ax.bar([x - 0.2 for x in xs], [getattr(w, f"stable_{attr}") for w in data.windows], 0.4,
               color=STABLE, label="stable")
        ax.bar([x + 0.2 for x in xs], [getattr(w, f"candidate_{attr}") for w in data.windows], 0.4,
               color=CANDIDATE, label="candidate")
        ax.set_xticks(list(xs), labels, fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    return _png(fig)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()
