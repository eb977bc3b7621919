"""Bearer-token auth with three roles: viewer < operator < admin.

Tokens come from RELCTL_API_TOKENS ("admin:TOKEN,operator:TOKEN,viewer:TOKEN"); they are
compared in constant time and never logged. The check is a FastAPI security dependency,
so OpenAPI declares the bearer scheme on every protected route.
"""
from __future__ import annotations

import hmac
import os

from fastapi import HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

ROLES = ("viewer", "operator", "admin")
TOKENS_ENV = "RELCTL_API_TOKENS"

bearer = HTTPBearer(auto_error=False, scheme_name="bearer",
                    description=f"a token from {TOKENS_ENV}; roles viewer < operator < admin")


def parse_tokens(spec: str) -> dict[str, str]:
    """token -> role. Raises ValueError naming the bad entry (without echoing the secret)."""
    tokens: dict[str, str] = {}
    for i, entry in enumerate(filter(None, (e.strip() for e in spec.split(",")))):
        role, sep, token = entry.partition(":")
        if not sep or role not in ROLES or not token:
            raise ValueError(f"{TOKENS_ENV} entry {i + 1} must be ROLE:TOKEN with ROLE one of {', '.join(ROLES)}")
        tokens[token] = role
    return tokens


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
    for known, role in tokens.items():
        if hmac.compare_digest(known.encode(), token.encode()):
            found = role
    return found
