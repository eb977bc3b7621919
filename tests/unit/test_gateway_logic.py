"""Pure logic of the gateway: split, stickiness, route documents, validators, pair comparison."""
from __future__ import annotations

import random

import pytest

from controller.gateway.compare import Side, compare, normalize
from controller.gateway.routing import Split, request_point, session_key, session_point
from policies.validators import ValidatorConfigError, compile_validators, first_failure
from controller.traffic.base import Backend, Fault, RouteSpec
from controller.traffic.wire import (RouteError, fault_from_json, fault_to_json, route_from_json,
                                     route_to_json)

SPEC = RouteSpec(
    model="tiny", release_id="r1", mirror_to="candidate", mirror_percent=50.0,
    backends=(Backend("stable", "http://127.0.0.1:1", "1"), Backend("candidate", "http://127.0.0.1:2", "2")),
    weights={"stable": 90.0, "candidate": 10.0},
    validators=({"type": "regex", "pattern": "^ok"},),
)


def test_split_ratio_matches_weights():
    split = Split.from_weights({"stable": 80, "candidate": 20})
    rng = random.Random(7)
    n = 20_000
    hits = sum(split.pick(request_point(None, rng)) == "candidate" for _ in range(n))
    # 20% of 20k: sd ~57; 5 sd keeps the test from flaking while still catching a wrong split
    assert abs(hits - 0.2 * n) < 5 * (n * 0.2 * 0.8) ** 0.5


def test_zero_weight_track_never_chosen():
    split = Split.from_weights({"stable": 100, "candidate": 0})
    assert {split.pick(p) for p in (0.0, 50.0, 99.999, 100.0)} == {"stable"}


def test_all_zero_weights_rejected():
    with pytest.raises(ValueError, match="weight above 0"):
        Split.from_weights({"stable": 0, "candidate": 0})


def test_session_keeps_its_track_and_candidate_sessions_stay_as_weight_grows():
    keys = [f"user-{i}" for i in range(2000)]
    assert all(session_point(k) == session_point(k) for k in keys[:10])
    small, big = Split.from_weights({"stable": 95, "candidate": 5}), Split.from_weights({"stable": 50, "candidate": 50})
    on_candidate_small = {k for k in keys if small.pick(session_point(k)) == "candidate"}
    on_candidate_big = {k for k in keys if big.pick(session_point(k)) == "candidate"}
    assert on_candidate_small and on_candidate_small <= on_candidate_big
    assert 0.4 < len(on_candidate_big) / len(keys) < 0.6


def test_session_header_wins_over_user_field():
    assert session_key("abc", {"user": "u1"}) == "abc"
    assert session_key(None, {"user": "u1"}) == "u1"
    assert session_key(None, {"user": 5}) is None


def test_route_json_round_trip():
    assert route_from_json(route_to_json(SPEC)) == SPEC


@pytest.mark.parametrize("change, message", [
    ({"weights": {"stable": 50, "candidate": 10}}, "sum to 100"),
    ({"weights": {"stable": 100, "other": 0}}, "without a backend"),
    ({"mirror_to": "nowhere"}, "mirror_to"),
    ({"model": ""}, "model"),
    ({"backends": []}, "backends"),
    ({"backends": [{"track": "blue", "url": "http://x", "version": "1"}]}, "track"),
    ({"backends": [{"track": "stable", "url": "ftp://x", "version": "1"}]}, "url"),
    ({"mirror_percent": 150}, "mirror_percent"),
])
def test_bad_route_documents_are_rejected_with_reason(change, message):
    doc = route_to_json(SPEC) | change
    with pytest.raises(RouteError, match=message):
        route_from_json(doc)


def test_fault_json_checks_ranges_and_fields():
    assert fault_from_json(fault_to_json(Fault(0.5, 10, True))) == Fault(0.5, 10, True)
    with pytest.raises(RouteError, match="error_rate"):
        fault_from_json({"error_rate": 2})
    with pytest.raises(RouteError, match="unknown fault fields"):
        fault_from_json({"errors": 1})


def test_regex_and_json_schema_validators():
    vs = compile_validators([
        {"type": "regex", "pattern": r"\d+ EUR", "name": "amount"},
        {"type": "json_schema", "required": ["amount", "currency"], "name": "fields"},
    ])
    assert first_failure(vs[:1], "total: 12 EUR") is None
    assert "amount" in first_failure(vs[:1], "no money here")
    assert first_failure(vs[1:], '```json\n{"amount": 1, "currency": "EUR"}\n```') is None
    assert "currency" in first_failure(vs[1:], '{"amount": 1}')
    assert "not JSON" in first_failure(vs[1:], "plain text")


def test_regex_must_not_match_and_bad_configs():
    (v,) = compile_validators([{"type": "regex", "pattern": "SSN", "must_match": False}])
    assert first_failure((v,), "fine") is None and first_failure((v,), "your SSN") is not None
    with pytest.raises(ValidatorConfigError, match="unknown type"):
        compile_validators([{"type": "llm_judge"}])
    with pytest.raises(ValidatorConfigError, match="bad pattern"):
        compile_validators([{"type": "regex", "pattern": "("}])
    with pytest.raises(ValidatorConfigError, match="invalid JSON schema"):
        compile_validators([{"type": "json_schema", "schema": {"type": 12}}])


def _side(ok=True, text="Hello world", latency=0.1, tokens=2):
    return Side(ok=ok, status=200 if ok else 503, latency_s=latency, text=text, completion_tokens=tokens)


def test_pair_outcomes_and_agreement():
    r = compare(_side(), _side(text="  hello   WORLD!", latency=0.3, tokens=4))
    assert (r.outcome, r.exact, r.normalized, r.candidate_slower, r.token_delta) == ("both_ok", False, True, True, 2)
    assert compare(_side(), _side()).exact
    assert compare(_side(), _side(ok=False)).outcome == "only_candidate_failed"
    assert compare(_side(ok=False), _side()).outcome == "only_stable_failed"
    failed = compare(_side(ok=False), _side(ok=False))
    assert failed.outcome == "both_failed" and not failed.normalized


def test_normalize_ignores_case_space_and_edge_punctuation():
    assert normalize("  The  Answer is 42. ") == normalize("the answer is 42")
    assert normalize("42") != normalize("43")


def test_default_redaction_masks_emails_and_long_numbers():
    from controller.gateway.audit import default_redact
    out = default_redact("mail jane@example.org or call +44 20 7946 0958, order 42")
    assert out == "mail [EMAIL] or call [NUMBER], order 42"
