"""MLflow's canonical spelling of a model version, enforced at every boundary.

MLflow numbers the versions of a registered model 1, 2, 3, ... and prints them without
leading zeros. Anything else ("01", "٢" and other non-ASCII digits, a thousand digits)
is refused here, so the store only ever holds the canonical string and "01" can never
pass for a different version than "1".
"""
from __future__ import annotations

import re

MAX_VERSION_DIGITS = 9          # MLflow keeps versions in a 32-bit integer column
_CANONICAL = re.compile(rf"[1-9][0-9]{{0,{MAX_VERSION_DIGITS - 1}}}")
# The same rule for OpenAPI / JSON schema consumers (ECMA regex syntax).
VERSION_PATTERN = rf"^[1-9][0-9]{{0,{MAX_VERSION_DIGITS - 1}}}$"


class VersionError(ValueError):
    """A version that is not MLflow's canonical form; the message says what is wrong."""


def canonical_version(raw: object) -> str:
    """The canonical text of `raw` (a str, or an int from a JSON payload), else VersionError."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str):
        raise VersionError(f"version must be a string of digits, got {type(raw).__name__}")
    if _CANONICAL.fullmatch(raw):   # fullmatch: no trailing newline slips through "$"
        return raw
    shown = raw if len(raw) <= 20 else raw[:20] + "…"
    if len(raw) > MAX_VERSION_DIGITS and raw.isascii() and raw.isdigit():
        raise VersionError(f"version has {len(raw)} digits; at most {MAX_VERSION_DIGITS} are allowed")
    raise VersionError(f"version must be a positive integer in ASCII digits without leading zeros "
                       f"(MLflow's form, e.g. '3'), got {shown!r}")
