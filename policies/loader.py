"""Load a policy from YAML with errors that name the file and the field."""
from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from policies.schema import Policy

BUILTIN_DIR = Path(__file__).parent


class PolicyError(ValueError):
    pass


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def load_policy(ref: str | Path | None = None) -> Policy:
    """`ref` is a built-in name (see builtin_names) or a path; None means `default`."""
    path = _resolve(ref or "default")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise PolicyError(f"{path}: a policy is a mapping of fields, got {type(raw).__name__}")
    return parse_policy(raw, source=str(path))


def parse_policy(raw: dict, source: str = "<policy>") -> Policy:
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()]
        raise PolicyError(f"{source}: invalid policy:\n  " + "\n  ".join(lines)) from None


def _resolve(ref: str | Path) -> Path:
    path = Path(ref)
    if path.suffix in {".yaml", ".yml"} or path.exists():
        if not path.is_file():
            raise PolicyError(f"policy file not found: {path}")
        return path
    builtin = BUILTIN_DIR / f"{ref}.yaml"
    if not builtin.is_file():
        raise PolicyError(f"unknown policy {ref!r}; built-in policies: {', '.join(builtin_names())}")
    return builtin
