"""Evaluation suites as data: a JSONL file of prompts, each with how its answer is checked.

One JSON object per line (blank lines are skipped); exactly one expectation per item:
  {"prompt": "Q: What is the capital of France?\\nA:", "answer": "Paris"}          # normalised match
  {"prompt": "...", "answer": "Paris", "match": "exact"}                           # first line, exact
  {"prompt": "...", "regex": "^\\\\s*Ben\\\\b"}                                     # re.search on the output
  {"prompt": "...", "json_schema": {"type": "object", "required": ["city"]}}       # output parses and validates
  {"prompt": "...", "number": 7, "tolerance": 0.01}                                # first number in the output
Optional: "max_tokens" (default 8), "id". Unknown keys, a bad regex or schema, or a line
that is not JSON are errors naming the file and the line.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DATA_DIR = Path(__file__).parent / "data"
# small: the 121 questions (fast, decides nothing near 1.2 points); large: 6,044 generated items;
# medium: a fixed 2,000-item sample of large (quantize/data/generate.py), the demo's suite.
BUILTIN = {"builtin:small": DATA_DIR / "eval.jsonl", "builtin:medium": DATA_DIR / "eval_medium.jsonl",
           "builtin:large": DATA_DIR / "eval_large.jsonl"}
DEFAULT_MAX_TOKENS = 8
EXPECTATIONS = ("answer", "regex", "json_schema", "number")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


class SuiteError(ValueError):
    """A suite file that cannot be used; the message names the file and the line."""


def normalize(text: str) -> str:
    """First line, lower case, no punctuation or surrounding space: ' Paris.\\n' -> 'paris'."""
    first = text.strip().split("\n")[0]
    return re.sub(r"[^\w\s]", "", first).strip().lower()


@dataclass(frozen=True)
class SuiteItem:
    prompt: str
    check: Callable[[str], bool] = field(compare=False, repr=False)
    expected: str                      # what a right answer looks like, for logs
    max_tokens: int = DEFAULT_MAX_TOKENS
    id: str = ""


@dataclass(frozen=True)
class Suite:
    name: str
    items: tuple[SuiteItem, ...]


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(min_length=1)
    answer: str | None = None
    match: Literal["normalized", "exact"] = "normalized"
    regex: str | None = None
    json_schema: dict[str, Any] | None = None
    number: float | None = None
    tolerance: float = Field(0.0, ge=0)
    max_tokens: int = Field(DEFAULT_MAX_TOKENS, ge=1, le=4096)
    id: str | int | None = None

    @model_validator(mode="after")
    def _one_expectation(self) -> "_Row":
        given = [k for k in EXPECTATIONS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"needs exactly one of {', '.join(EXPECTATIONS)} (got {', '.join(given) or 'none'})")
        return self


def _first_json(text: str) -> Any:
    fenced = _FENCE.match(text)          # models often wrap JSON in a markdown fence
    return json.loads(fenced.group(1) if fenced else text)


def _check(row: _Row) -> tuple[Callable[[str], bool], str]:
    if row.answer is not None:
        want = row.answer
        if row.match == "exact":
            return (lambda out: out.strip().split("\n")[0].strip() == want.strip()), want
        return (lambda out: normalize(out) == normalize(want)), want
    if row.regex is not None:
        try:
            pattern = re.compile(row.regex)
        except re.error as exc:
            raise ValueError(f"regex {row.regex!r} does not compile: {exc}") from None
        return (lambda out: pattern.search(out) is not None), f"/{row.regex}/"
    if row.json_schema is not None:
        try:
            jsonschema.Draft202012Validator.check_schema(row.json_schema)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"invalid JSON schema: {exc.message}") from None
        validator = jsonschema.Draft202012Validator(row.json_schema)
        return _json_check(validator), "JSON matching the schema"
    number, tolerance = row.number, row.tolerance
    return _number_check(number, tolerance), f"{number:g} ± {tolerance:g}"


def _json_check(validator: jsonschema.Draft202012Validator) -> Callable[[str], bool]:
    def check(out: str) -> bool:
        try:
            return validator.is_valid(_first_json(out))
        except ValueError:
            return False
    return check


def _number_check(number: float, tolerance: float) -> Callable[[str], bool]:
    def check(out: str) -> bool:
        found = _NUMBER.search(out)
        return found is not None and abs(float(found.group()) - number) <= tolerance
    return check


def _item(line: str, where: str) -> SuiteItem:
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise SuiteError(f"{where}: not JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(raw, dict):
        raise SuiteError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    try:
        row = _Row.model_validate(raw)
        check, expected = _check(row)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise SuiteError(f"{where}: {loc + ': ' if loc else ''}{first['msg'].removeprefix('Value error, ')}") from None
    except ValueError as exc:
        raise SuiteError(f"{where}: {exc}") from None
    return SuiteItem(row.prompt, check, expected, row.max_tokens, "" if row.id is None else str(row.id))


def parse_suite(text: str, name: str) -> Suite:
    items = [_item(line, f"suite {name} line {n}") for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not items:
        raise SuiteError(f"suite {name} has no items")
    return Suite(name, tuple(items))


def load_suite(ref: str | Path | None = None) -> Suite:
    """A built-in suite by name (builtin:small, builtin:medium, builtin:large) or a JSONL file;
    default builtin:small."""
    ref = str(ref) if ref is not None else "builtin:small"
    if ref.startswith("builtin:"):
        if ref not in BUILTIN:
            raise SuiteError(f"unknown built-in suite {ref!r}; known: {', '.join(sorted(BUILTIN))}")
        return parse_suite(BUILTIN[ref].read_text(encoding="utf-8"), ref)
    path = Path(ref)
    if not path.is_file():
        raise SuiteError(f"suite file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"suite file {path} cannot be read: {exc}") from None
    return parse_suite(text, str(path))
