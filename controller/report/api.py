"""The report over HTTP: `GET /api/v1/releases/{id}/report` (viewer) and a read-only browser page
`GET /releases/{id}/page` that reloads itself while the release runs.

The page also accepts HTTP Basic auth (any user name, the API token as password) so that a
browser can open it: it prompts once and sends the credentials again on every reload.
"""
from __future__ import annotations

import base64
import binascii
import hmac

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse

from controller.api.auth import ROLES, require
from controller.report import render_report

AUDIT_LIMIT = 10000          # the audit summary covers the newest answers up to this many
PAGE_REFRESH_SECONDS = 5


def report_router(ctx, require_role=require) -> APIRouter:
    """`ctx` is the controller (controller.reconcile.context.Controller)."""
    router = APIRouter()

    @router.get("/api/v1/releases/{release_id}/report", response_class=HTMLResponse,
                dependencies=[require_role("viewer")])
    def report(release_id: str) -> HTMLResponse:
        return HTMLResponse(report_html(ctx, release_id))

    @router.get("/releases/{release_id}/page", response_class=HTMLResponse, dependencies=[Depends(page_viewer)])
    def page(release_id: str) -> HTMLResponse:
        return HTMLResponse(report_html(ctx, release_id, PAGE_REFRESH_SECONDS),
                            headers={"Cache-Control": "no-store"})

    return router


def report_html(ctx, release_id: str, refresh_seconds: int | None = None) -> str:
    from controller.api.app import release_json   # lazy: the app module may import this one
    release = release_json(ctx.store.get(release_id))   # NotFound -> 404 by the app's handler
    events = ctx.store.events(release_id)
    steps = ((ctx.store.policy_of(release_id) or {}).get("canary") or {}).get("steps")
    audit = ctx.audit.query(release_id=release_id, limit=AUDIT_LIMIT) if ctx.audit is not None else None
    return render_report(release, events, steps, audit, refresh_seconds)


def page_viewer(request: Request) -> str:
    """Bearer or Basic (password = token); at least the viewer role."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    token = _basic_password(value) if scheme.lower() == "basic" else value if scheme.lower() == "bearer" else ""
    challenge = {"WWW-Authenticate": 'Basic realm="relctl", charset="UTF-8"'}
    if not token:
        raise HTTPException(401, "log in with an API token as the password", headers=challenge)
    role = next((r for t, r in request.app.state.tokens.items() if hmac.compare_digest(t.encode(), token.encode())),
                None)
    if role is None:
        raise HTTPException(401, "invalid token", headers=challenge)
    if ROLES.index(role) < ROLES.index("viewer"):
        raise HTTPException(403, f"role {role} may not do this; needs viewer")
    return role


def _basic_password(value: str) -> str:
    try:
        _, _, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return ""
    return password
