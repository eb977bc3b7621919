"""Release reports: one self-contained HTML page per release (tables and PNG charts).

`extract` turns the API's JSON into report values (pure); `charts` draws them with matplotlib;
`page` writes the HTML; `api` serves it; `cli` adds `relctl report ID`.
"""
from __future__ import annotations

from controller.report.extract import ReportData, extract


def render_report(release: dict, events: list[dict], canary_steps: list[float] | None = None,
                  audit: list[dict] | None = None, refresh_seconds: int | None = None) -> str:
    from controller.report.page import render_html   # matplotlib loads only when a page is drawn
    return render_html(extract(release, events, canary_steps, audit), refresh_seconds)


__all__ = ["ReportData", "extract", "render_report"]
