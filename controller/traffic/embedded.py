"""Traffic backend for relctl's embedded gateway: talks to its admin API over HTTP.

Control plane only (a few calls per reconcile tick), so stdlib urllib is enough. The JSON
form of RouteSpec/Fault is in wire.py, shared with the gateway's admin API.
"""
from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from controller.traffic.base import Fault, RouteSpec
from controller.traffic.wire import fault_to_json, route_from_json, route_to_json

log = logging.getLogger(__name__)

GATEWAY_TOKEN_ENV = "RELCTL_GATEWAY_TOKEN"   # shared with the gateway's admin API


class GatewayAdminError(RuntimeError):
    """The gateway's admin API refused a call or could not be reached."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class EmbeddedGatewayRouter:
    """TrafficRouter over the embedded gateway's admin API (idempotent PUT/DELETE)."""

    def __init__(self, admin_url: str, token: str, timeout: float = 10.0):
        if not admin_url.startswith(("http://", "https://")):
            raise ValueError(f"admin_url must be an http(s) URL, got {admin_url!r}")
        self._base = admin_url.rstrip("/")
        self._token = token
        self._timeout = timeout

    def apply(self, spec: RouteSpec) -> None:
        self._call("PUT", f"/admin/routes/{_q(spec.model)}", route_to_json(spec))
        log.info("route applied", extra={"model": spec.model, "weights": dict(spec.weights),
                                         "mirror_to": spec.mirror_to})

    def current(self, model: str) -> RouteSpec | None:
        try:
            doc = self._call("GET", f"/admin/routes/{_q(model)}")
        except GatewayAdminError as exc:
            if exc.status == 404:
                return None
            raise
        return route_from_json(doc)

    def remove(self, model: str) -> None:
        try:
            self._call("DELETE", f"/admin/routes/{_q(model)}")
        except GatewayAdminError as exc:
            if exc.status != 404:     # already gone: removal is idempotent
                raise

    def set_fault(self, model: str, track: str, fault: Fault) -> None:
        self._call("PUT", f"/admin/faults/{_q(model)}/{_q(track)}", fault_to_json(fault))

    def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self._base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self._token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self._timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise GatewayAdminError(f"{method} {path} -> HTTP {exc.code}: {detail}", exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            raise GatewayAdminError(f"{method} {path}: gateway unreachable ({exc})") from None
        return json.loads(raw) if raw else None


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def build(settings, sessions) -> EmbeddedGatewayRouter:
    """Backend factory (controller.backends): the relctl gateway's admin API."""
    from controller.config import secret
    return EmbeddedGatewayRouter(settings.gateway_admin_url, secret(GATEWAY_TOKEN_ENV))

