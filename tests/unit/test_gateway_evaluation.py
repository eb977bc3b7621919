"""Evaluation traffic through the gateway: answered by the named version, never split, mirrored or counted."""
from __future__ import annotations

import httpx
import pytest

from tests.unit.test_gateway_http import AUTH, fakes, gw, live, put_route, sample  # noqa: F401

EVAL = {"X-Relctl-Traffic": "evaluation"}
PROMPT = {"model": "tiny", "prompt": "Q: capital of France?\nA:", "max_tokens": 4}


@pytest.mark.parametrize("version, answered_by", [("1", "stable"), ("2", "candidate"), (None, "stable")])
def test_evaluation_goes_to_the_named_version_and_is_not_counted(gw, fakes, version, answered_by):  # noqa: F811
    put_route(gw, fakes, candidate_weight=50, mirror=True)
    headers = {**EVAL, **({"X-Relctl-Version": version} if version else {})}
    replies = [httpx.post(f"{gw.url}/v1/completions", json=PROMPT, headers=headers) for _ in range(10)]
    assert {r.status_code for r in replies} == {200}
    assert {r.headers["X-Relctl-Track"] for r in replies} == {answered_by}
    assert {r.json()["choices"][0]["text"] for r in replies} == {f"{answered_by} says hi"}
    stable, candidate = fakes
    assert (stable.calls, candidate.calls) == ((10, 0) if answered_by == "stable" else (0, 10))   # no mirror
    for track, v in (("stable", "1"), ("candidate", "2")):
        assert sample(gw, "relctl_requests_total", **live(track, v)) == 0
        assert sample(gw, "relctl_sessions_total", **live(track, v)) == 0


def test_a_version_not_served_is_409_naming_it(gw, fakes):  # noqa: F811
    put_route(gw, fakes)
    r = httpx.post(f"{gw.url}/v1/completions", json=PROMPT, headers={**EVAL, "X-Relctl-Version": "7"})
    assert r.status_code == 409 and "version '7'" in r.json()["error"]["message"]
    assert r.json()["error"]["type"] == "version_not_served"


def test_user_traffic_is_still_counted(gw, fakes):  # noqa: F811
    put_route(gw, fakes)
    assert httpx.post(f"{gw.url}/v1/completions", json=PROMPT).status_code == 200
    assert sample(gw, "relctl_requests_total", **live("stable", "1")) == 1
