"""Evaluation suites as data: every checking rule, the built-in suites, and bad files
refused with the line named."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from policies.schema import QualityGate
from pydantic import ValidationError
from quantize.report import correct
from quantize.suites import SuiteError, load_suite, parse_suite


def suite(*rows: dict):
    return parse_suite("\n".join(json.dumps(r) for r in rows), "t.jsonl")


@pytest.mark.parametrize("row, output, expected", [
    ({"answer": "Paris"}, " Paris.\nQ: next", True),
    ({"answer": "Paris"}, " paris!", True),
    ({"answer": "Paris"}, " Paris is nice", False),
    ({"answer": "Paris", "match": "exact"}, " Paris\nmore", True),
    ({"answer": "Paris", "match": "exact"}, " paris", False),
    ({"regex": r"^\s*Ben\b"}, " Ben said thank you", True),
    ({"regex": r"^\s*Ben\b"}, " Benjamin", False),
    ({"json_schema": {"type": "object", "required": ["city"]}}, '{"city": "Rome"}', True),
    ({"json_schema": {"type": "object", "required": ["city"]}}, '```json\n{"city": "Rome"}\n```', True),
    ({"json_schema": {"type": "object", "required": ["city"]}}, '{"town": "Rome"}', False),
    ({"json_schema": {"type": "object"}}, "not json", False),
    ({"number": 7, "tolerance": 0.01}, " about 7.004 apples", True),
    ({"number": 7}, " 8", False),
    ({"number": -2.5}, "x = -2.5e0", True),
    ({"number": 3}, " three", False),
])
def test_each_rule_checks_the_output(row: dict, output: str, expected: bool) -> None:
    item = suite({"prompt": "p", **row}).items[0]
    assert item.check(output) is expected


@pytest.mark.parametrize("line, message", [
    ("{not json", "suite t.jsonl line 2: not JSON"),
    ('["a list"]', "line 2: expected a JSON object, got list"),
    ('{"prompt": "p"}', "line 2: needs exactly one of answer, regex, json_schema, number \\(got none\\)"),
    ('{"prompt": "p", "answer": "a", "regex": "a"}', "line 2: needs exactly one of .* \\(got answer, regex\\)"),
    ('{"prompt": "p", "answer": "a", "colour": "red"}', "line 2: colour: Extra inputs are not permitted"),
    ('{"prompt": "", "answer": "a"}', "line 2: prompt: String should have at least 1 character"),
    ('{"prompt": "p", "regex": "(unclosed"}', "line 2: regex '\\(unclosed' does not compile"),
    ('{"prompt": "p", "json_schema": {"type": "nonsense"}}', "line 2: invalid JSON schema"),
    ('{"prompt": "p", "number": 1, "tolerance": -1}', "line 2: tolerance: Input should be greater than or equal"),
    ('{"prompt": "p", "answer": "a", "max_tokens": 0}', "line 2: max_tokens"),
    ('{"prompt": "p", "answer": "a", "match": "fuzzy"}', "line 2: match: Input should be 'normalized' or 'exact'"),
])
def test_bad_lines_are_refused_naming_the_line(line: str, message: str) -> None:
    good = '{"prompt": "q", "answer": "a"}'
    with pytest.raises(SuiteError, match=message):
        parse_suite(f"{good}\n{line}\n", "t.jsonl")


def test_files_and_builtins(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text('{"prompt": "p", "answer": "a", "max_tokens": 3, "id": 7}\n\n')
    loaded = load_suite(path)
    assert loaded.name == str(path) and loaded.items[0].max_tokens == 3 and loaded.items[0].id == "7"
    assert len(load_suite("builtin:small").items) == 121 and len(load_suite(None).items) == 121
    assert len(load_suite("builtin:large").items) > 5000
    with pytest.raises(SuiteError, match="suite file not found"):
        load_suite(tmp_path / "missing.jsonl")
    with pytest.raises(SuiteError, match="has no items"):
        parse_suite("\n \n", "empty.jsonl")
    with pytest.raises(SuiteError, match="unknown built-in suite 'builtin:huge'; known: builtin:large, builtin:medium, "
                                         "builtin:small"):
        load_suite("builtin:huge")


def test_medium_is_a_fixed_sample_of_large() -> None:
    """builtin:medium: 2,000 of large's items, same prompts, rules and ids, in large's order; the
    committed file is what the generator writes (so the sample cannot drift from its seed)."""
    from quantize.data.generate import medium_eval_items
    medium, large = load_suite("builtin:medium"), load_suite("builtin:large")
    assert medium.name == "builtin:medium" and len(medium.items) == 2000
    by_id = {it.id: it for it in large.items}
    assert all(it.id in by_id and (it.prompt, it.expected, it.max_tokens) ==
               (by_id[it.id].prompt, by_id[it.id].expected, by_id[it.id].max_tokens) for it in medium.items)
    order = [int(it.id[1:]) for it in medium.items]
    assert order == sorted(set(order))
    # drawn from the whole file: the questions (L0-L120), the fact clozes and the story clozes (L249-)
    assert min(order) < 121 and any(121 <= i < 249 for i in order) and max(order) > 5000
    assert [it["id"] for it in medium_eval_items()] == [it.id for it in medium.items]


def test_policy_names_the_suite() -> None:
    assert QualityGate().suite == "builtin:large"
    assert QualityGate(suite="builtin:medium").suite == "builtin:medium"
    with pytest.raises(ValidationError, match="unknown built-in suite"):
        QualityGate(suite="builtin:huge")


class _Echo:
    """A scorer that answers each prompt's last word, and records the token limits asked."""

    def __init__(self) -> None:
        self.limits: list[int] = []

    def answers(self, prompts: list[str], max_new_tokens: int) -> list[str]:
        self.limits.append(max_new_tokens)
        return [" " + p.split()[-1] for p in prompts]


def test_items_are_scored_in_order_grouped_by_token_limit() -> None:
    s = suite({"prompt": "say a", "answer": "a", "max_tokens": 4}, {"prompt": "say b", "answer": "c"},
              {"prompt": "say 5", "number": 5, "max_tokens": 4})
    scorer = _Echo()
    assert correct(scorer, s.items) == [True, False, True]
    assert scorer.limits == [4, 8]


def test_the_committed_large_suite_is_what_the_generator_writes() -> None:
    from quantize.data.generate import large_eval_items
    from quantize.suites import BUILTIN

    lines = BUILTIN["builtin:large"].read_text().splitlines()
    assert [json.loads(line) for line in lines] == large_eval_items()
    story = next(json.loads(line) for line in lines if json.loads(line)["prompt"].endswith(" was"))
    item = parse_suite(json.dumps(story), "one").items[0]    # "The next day was" -> the day after
    day = story["regex"].split("s*")[1].removesuffix("\\b")
    assert item.check(f" {day}. Later") and not item.check(" Someday")
