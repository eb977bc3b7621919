"""Load a policy from YAML with errors that name the source, the field and the line.

Two ways in, trusted differently:
- `load_policy(ref)`: a built-in name or a file path, for the local user (the CLI, the
  operator's `--watch MODEL:POLICY`).
- `policy_from_request(policy)`: what an API caller may send: a policy *name* (built-in,
  or a `<name>.yaml` in the operator's RELCTL_POLICY_DIR) or an inline mapping. It never
  reads a path the caller chose, and its errors never quote a file's lines.

Files are read defensively (policies/yaml_guard.py): size-capped, UTF-8 only, one YAML
document, duplicate keys refused, aliases bounded so that a "billion laughs" file fails at
once instead of expanding exponentially.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from policies.schema import Policy
from policies.yaml_guard import MAX_POLICY_BYTES, YamlDocument, YamlGuardError, read_yaml

BUILTIN_DIR = Path(__file__).parent
POLICY_DIR_ENV = "RELCTL_POLICY_DIR"       # the operator's own named policies
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)

__all__ = ["MAX_POLICY_BYTES", "NAME_PATTERN", "PolicyError", "builtin_names", "load_policy",
           "is_policy_name", "parse_policy", "policy_from_request", "policy_names", "watch_policy_ref"]


class PolicyError(ValueError):
    pass


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def is_policy_name(text: str) -> bool:
    """A syntactically valid policy name (never a path)."""
    return _NAME.fullmatch(text) is not None


def policy_names() -> list[str]:
    """Names an API caller may use: the built-ins and the operator's configured ones."""
    return sorted(set(builtin_names()) | set(_configured()))


def load_policy(ref: str | Path | None = None) -> Policy:
    """`ref` is a policy name (see policy_names) or a path; None means `default`.
    For local, trusted callers only: it reads any file it is given."""
    ref = ref or "default"
    if isinstance(ref, Path) or _looks_like_path(ref):
        path = Path(ref)
        if not path.is_file():
            raise PolicyError(f"policy file not found: {path}")
        return _load_file(path, str(path))
    return _load_named(ref)


def policy_from_request(policy: str | Mapping | None) -> Policy:
    """A policy from an untrusted caller: a name, an inline mapping, or None (`default`)."""
    if policy is None:
        return _load_named("default")
    if isinstance(policy, Mapping):
        return parse_policy(dict(policy), "request")
    if not isinstance(policy, str) or not _NAME.fullmatch(policy):
        raise PolicyError("policy must be a policy name (letters, digits, '-' or '_'; one of "
                          f"{', '.join(policy_names())}) or an inline policy object; file paths are not accepted")
    return _load_named(policy)


def watch_policy_ref(spec: str) -> str | Path:
    """The policy of an operator's `--watch MODEL:POLICY`: a Path when it names a file."""
    return Path(spec) if _looks_like_path(spec) else (spec or "default")


def parse_policy(raw: dict, source: str = "<policy>", doc: YamlDocument | None = None) -> Policy:
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        lines = [_error_line(e, doc) for e in exc.errors()]
        raise PolicyError(f"{source}: invalid policy:\n  " + "\n  ".join(lines)) from None


def _error_line(error: dict, doc: YamlDocument | None) -> str:
    field = ".".join(str(p) for p in error["loc"]) or "(top)"
    line = doc.line_of(error["loc"]) if doc is not None else None
    return f"{field}{f' (line {line})' if line else ''}: {error['msg']}"


def _load_named(name: str) -> Policy:
    path = (_configured().get(name) or BUILTIN_DIR / f"{name}.yaml") if _NAME.fullmatch(name) else None
    if path is None or not path.is_file():
        raise PolicyError(f"unknown policy {name!r}; known policies: {', '.join(policy_names())}")
    return _load_file(path, f"policy {name!r}")


def _load_file(path: Path, source: str) -> Policy:
    try:
        doc = read_yaml(path)
    except YamlGuardError as exc:
        raise PolicyError(f"{source}: {exc}") from None
    except OSError as exc:
        raise PolicyError(f"{source}: cannot read: {exc.strerror or type(exc).__name__}") from None
    if not isinstance(doc.data, dict):
        raise PolicyError(f"{source}: a policy is a mapping of fields, got {type(doc.data).__name__}")
    return parse_policy(doc.data, source, doc)


def _configured() -> dict[str, Path]:
    folder = os.environ.get(POLICY_DIR_ENV, "")
    if not folder or not Path(folder).is_dir():
        return {}
    return {p.stem: p for p in Path(folder).glob("*.yaml") if _NAME.fullmatch(p.stem)}


def _looks_like_path(ref: str) -> bool:
    return Path(ref).suffix in {".yaml", ".yml"} or "/" in ref or os.sep in ref or Path(ref).exists()
