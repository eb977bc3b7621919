"""`relctl evals list|run|history MODEL`: the evaluation API from the command line."""
from __future__ import annotations

import json
import os
import sys

import httpx

from controller.api_errors import error_detail


def add_evals_command(sub) -> None:
    """Register `relctl evals …` on the top-level subparsers of controller/cli.py."""
    evals = sub.add_parser("evals", help="scheduled evaluations of the live champion: schedule, run now, history")
    evals.add_argument("--api", default=os.environ.get("RELCTL_API", "http://127.0.0.1:8000"))
    esub = evals.add_subparsers(dest="evals_command", required=True)
    for name, helptext in (("list", "the model's schedule, next run and running evaluation"),
                           ("run", "evaluate the champion now (operator)"),
                           ("history", "past evaluations, newest first")):
        p = esub.add_parser(name, help=helptext)
        p.add_argument("model")
        if name == "history":
            p.add_argument("--limit", type=int, default=20)
            p.add_argument("--json", action="store_true", help="print the API's JSON")
        p.set_defaults(func=lambda a, n=name: _evals(a, n))


def _evals(args, command: str) -> int:
    path = f"/api/v1/models/{args.model}/evaluations"
    if command == "run":
        doc = _call(args.api, "POST", path + "/run")
    else:
        doc = _call(args.api, "GET", path, params={"limit": getattr(args, "limit", 20)})
    if doc is None:
        return 1
    if command == "list":
        doc = {"model": doc["model"], "schedule": doc["schedule"], "running": doc["running"]}
    if command == "history" and not args.json:
        print(_table(doc["runs"]))
        return 0
    print(json.dumps(doc, indent=2))
    return 0


def _table(runs: list[dict]) -> str:
    lines = [f"{'RUN':<20} {'VERSION':<8} {'TRIGGER':<9} {'STATE':<10} {'STARTED':<26} DRIFT  REASON"]
    for r in runs:
        drift = "yes" if (r.get("drift") or {}).get("drifted") else "no"
        lines.append(f"{r['id']:<20} {r['version']:<8} {r['trigger']:<9} {r['state']:<10} "
                     f"{r['started_at']:<26} {drift:<6} {r['reason'][:120]}")
    return "\n".join(lines)


def _call(api: str, method: str, path: str, params: dict | None = None) -> dict | None:
    token = os.environ.get("RELCTL_TOKEN", "")
    try:
        resp = httpx.request(method, api.rstrip("/") + path, params=params, timeout=30,
                             headers={"Authorization": f"Bearer {token}"} if token else {})
    except httpx.HTTPError as exc:
        print(f"relctl: error: cannot reach the relctl API at {api}: {exc}", file=sys.stderr)
        return None
    if resp.status_code >= 400:
        detail = error_detail(resp)
        print(f"relctl: error: HTTP {resp.status_code}: {detail}", file=sys.stderr)
        return None
    return resp.json()
