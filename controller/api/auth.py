"""Bearer-token auth with three roles: viewer < operator < admin, optionally limited to a tenant.

Tokens come from RELCTL_API_TOKENS ("admin:TOKEN,operator@bank-a:TOKEN,viewer:TOKEN"); they are
compared in constant time and never logged. The check is a FastAPI security dependency,
so OpenAPI declares the bearer scheme on every protected route. A token with `@TENANT` sees
and acts on that tenant's models only (`tenant_scope`); one without sees every model.
"""
from __future__ import annotations

import base64
import binascii
import hmac
import os

from fastapi import HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from controller.store.releases import NotFound

ROLES = ("viewer", "operator", "admin")
TOKENS_ENV = "RELCTL_API_TOKENS"

bearer = HTTPBearer(auto_error=False, scheme_name="bearer",
                    description=f"a token from {TOKENS_ENV}; roles viewer < operator < admin")


class Role(str):
    """A token's role (compares equal to "viewer", "operator" or "admin") and the tenant it is
    limited to (None: every tenant)."""
    tenant: str | None

    def __new__(cls, role: str, tenant: str | None = None) -> Role:
        obj = super().__new__(cls, role)
        obj.tenant = tenant
        return obj


def parse_tokens(spec: str) -> dict[str, str]:
    """token -> Role. Raises ValueError naming the bad entry (without echoing the secret)."""
    tokens: dict[str, str] = {}
    for i, entry in enumerate(filter(None, (e.strip() for e in spec.split(",")))):
        grant, sep, token = entry.partition(":")
        role, at, tenant = grant.partition("@")
        if not sep or role not in ROLES or not token or (at and not tenant):
            raise ValueError(f"{TOKENS_ENV} entry {i + 1} must be ROLE:TOKEN or ROLE@TENANT:TOKEN "
                             f"with ROLE one of {', '.join(ROLES)}")
        tokens[token] = Role(role, tenant or None)
    return tokens


def tenant_of_token(role: str) -> str | None:
    return getattr(role, "tenant", None)


def tokens_from_env() -> dict[str, str]:
    return parse_tokens(os.environ.get(TOKENS_ENV, ""))


def require(role: str):
    need = ROLES.index(role)

    def check(request: Request, creds: HTTPAuthorizationCredentials | None = Security(bearer)) -> str:
        if creds is None:
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        have = _role_of(request.app.state.tokens, creds.credentials)
        if have is None:
            raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
        if ROLES.index(have) < need:
            raise HTTPException(403, f"role {have} may not do this; needs {role}")
        return have

    return Security(check)


def _role_of(tokens: dict[str, str], token: str) -> str | None:
    found = None
    if not token:
        return None
    for known, role in tokens.items():
        if hmac.compare_digest(known.encode(), token.encode()):
            found = role
    return found


def tenant_scope(request: Request) -> None:
    """App-wide dependency: `request.state.tenant` is the presented token's tenant (None: all).

    A path naming a release or a model of another tenant answers 404 exactly as an unknown one
    does, whatever the role, so a tenant's token cannot probe which names exist. Runs before
    the route's role check; an unknown token is left to that check (401).
    """
    role = _role_of(request.app.state.tokens, _presented_token(request))
    tenant = request.state.tenant = tenant_of_token(role) if role else None
    if tenant is None:
        return
    owned = request.app.state.tenant_models.get(tenant, frozenset())
    model = request.path_params.get("model")
    if model is not None and model not in owned:
        raise HTTPException(404, f"no model {model!r}")
    release_id = request.path_params.get("release_id")
    if release_id is not None and request.app.state.ctx.store.get(release_id).model not in owned:
        raise NotFound(f"no release {release_id!r}")   # the store's own words for an unknown id


def _presented_token(request: Request) -> str:
    """Bearer, or Basic with the token as password (the report page)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return value
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value, validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return ""
    return ""
