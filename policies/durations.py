"""Policy fields holding seconds.

Durations are finite numbers: strict, so YAML's `yes` (a bool), `'5'` (a string), `.inf` and
`.nan` are refused instead of read as 1 s, 5 s or forever; capped, so no timedelta overflows later.
"""
from __future__ import annotations

from pydantic import Field

MAX_DURATION_SECONDS = 30 * 24 * 3600


def duration(default: object, *, allow_zero: bool = False, le: float = MAX_DURATION_SECONDS,
             description: str | None = None):
    """A policy field holding seconds: > 0 (or >= 0 with allow_zero), finite, at most `le` (30 days).
    `default` may be ... (required) or None (optional)."""
    bound = {"ge": 0} if allow_zero else {"gt": 0}
    return Field(default, strict=True, allow_inf_nan=False, le=le, description=description, **bound)
