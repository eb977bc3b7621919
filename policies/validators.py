"""Output validators from the rollout policy: checks on the text a model returned.

Forms accepted (a list of these per route):
  {"type": "regex", "pattern": "...", "name": "...", "must_match": true}
  {"type": "json_schema", "schema": {...JSON Schema...}, "name": "..."}
  {"type": "json_schema", "required": ["field", ...]}       # shorthand: an object with these fields
A failure is the error class `validator` for the track that produced the text.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable

import jsonschema

Check = Callable[[str], str | None]   # returns the reason for a failure, None when the text passes

_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


class ValidatorConfigError(ValueError):
    """A validator definition that cannot be compiled; the message says which and why."""


@dataclass(frozen=True)
class Validator:
    name: str
    check: Check


def _regex(spec: dict, name: str) -> Check:
    try:
        pattern = re.compile(spec["pattern"])
    except KeyError:
        raise ValidatorConfigError(f"validator {name!r}: regex needs a 'pattern'") from None
    except (re.error, TypeError) as exc:
        raise ValidatorConfigError(f"validator {name!r}: bad pattern: {exc}") from None
    must_match = bool(spec.get("must_match", True))

    def check(text: str) -> str | None:
        found = pattern.search(text) is not None
        if found == must_match:
            return None
        return f"{name}: output {'does not match' if must_match else 'matches'} /{pattern.pattern}/"
    return check


def _json_schema(spec: dict, name: str) -> Check:
    schema = spec.get("schema")
    if schema is None and "required" in spec:
        schema = {"type": "object", "required": list(spec["required"])}
    if not isinstance(schema, dict):
        raise ValidatorConfigError(f"validator {name!r}: json_schema needs 'schema' or 'required'")
    try:
        checker = jsonschema.Draft202012Validator(schema)
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValidatorConfigError(f"validator {name!r}: invalid JSON schema: {exc.message}") from None

    def check(text: str) -> str | None:
        fenced = _FENCE.match(text)      # models often wrap JSON in a markdown fence
        try:
            doc = json.loads(fenced.group(1) if fenced else text)
            error = next(iter(checker.iter_errors(doc)), None)
        except ValueError:
            return f"{name}: output is not JSON"
        except RecursionError:        # a model's output must never crash the request
            return f"{name}: output is nested too deeply"
        return None if error is None else f"{name}: {error.message}"
    return check


_KINDS = {"regex": _regex, "json_schema": _json_schema}


def compile_validators(specs: tuple[dict, ...] | list[dict]) -> tuple[Validator, ...]:
    out = []
    for i, spec in enumerate(specs):
        kind = spec.get("type")
        name = str(spec.get("name") or f"{kind}#{i}")
        if kind not in _KINDS:
            raise ValidatorConfigError(
                f"validator {name!r}: unknown type {kind!r}; known types: {sorted(_KINDS)}")
        out.append(Validator(name=name, check=_KINDS[kind](spec, name)))
    return tuple(out)


def first_failure(validators: tuple[Validator, ...], text: str) -> str | None:
    for v in validators:
        reason = v.check(text)
        if reason is not None:
            return reason
    return None
