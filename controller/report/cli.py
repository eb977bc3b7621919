"""`relctl report ID [-o FILE]`: save a release's report page (fetched from the API) as one HTML file."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx

from controller.api_errors import error_detail


class ReportError(Exception):
    pass


def add_report_command(sub) -> None:
    """Register the sub-command on relctl's argparse sub-parsers."""
    p = sub.add_parser("report", help="write a release's report (one self-contained HTML page)")
    p.add_argument("release_id")
    p.add_argument("-o", "--out", help="file to write (default: relctl-report-ID.html)")
    p.add_argument("--api", default=os.environ.get("RELCTL_API", "http://127.0.0.1:8000"))
    p.set_defaults(func=write_report)


def write_report(args) -> int:
    out = Path(args.out or f"relctl-report-{args.release_id}.html")
    try:
        fetch_report(args.api, os.environ.get("RELCTL_TOKEN", ""), args.release_id, out)
    except ReportError as exc:
        print(f"relctl: error: {exc}", file=sys.stderr)
        return 1
    print(out.resolve())
    return 0


def fetch_report(api: str, token: str, release_id: str, out: Path) -> Path:
    """GET /api/v1/releases/{id}/report and write it to `out` (the demo calls this too)."""
    url = f"{api.rstrip('/')}/api/v1/releases/{release_id}/report"
    try:
        resp = httpx.get(url, timeout=60, headers={"Authorization": f"Bearer {token}"} if token else {})
    except httpx.HTTPError as exc:
        raise ReportError(f"cannot reach the relctl API at {api}: {exc}") from None
    if resp.status_code >= 400:
        detail = error_detail(resp)
        raise ReportError(f"HTTP {resp.status_code}: {detail}")
    out.write_text(resp.text, encoding="utf-8")
    return out
