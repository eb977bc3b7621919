"""The low-traffic plan: how long steps need to decide, and what relctl does about it."""
import dataclasses
import json
import math

import pytest

from controller.analysis.planning import StepEstimate, plan, plan_from_counts
from policies.analysis import AnalysisPolicy

STEPS = [5, 25, 50]


def test_two_requests_a_second_keeps_the_candidate_in_shadow_with_a_bounded_time():
    p = plan(2.0, 0.01, STEPS, 30, AnalysisPolicy())
    assert p.action == "shadow"
    assert p.steps[0].seconds > AnalysisPolicy().max_window_seconds      # a 5 % step could not decide
    assert p.steps[0].seconds > p.steps[1].seconds > p.steps[2].seconds
    assert 300 < p.announced_seconds < 1800 and p.announced_seconds >= p.shadow.seconds
    event = p.event()
    json.dumps(event, allow_nan=False)
    assert "Kept in shadow" in event["message"]


def test_a_step_that_never_decides_is_null_in_the_event_json():
    p = plan(2.0, 0.01, STEPS, 30, AnalysisPolicy())
    never = dataclasses.replace(p, steps=(StepEstimate(0.05, math.inf, math.inf), *p.steps[1:]))
    event = json.loads(json.dumps(never.event(), allow_nan=False))      # PostgreSQL's JSON has no Infinity
    assert event["steps"][0]["seconds"] is None


def test_lengthen_gives_every_step_the_slowest_steps_time():
    p = plan(2.0, 0.01, STEPS, 30, AnalysisPolicy(low_traffic="lengthen"))
    assert p.action == "lengthen" and p.recommended_step_seconds >= p.steps[0].seconds
    assert p.announced_seconds == 3 * p.recommended_step_seconds


def test_ordinary_traffic_keeps_the_policy_and_the_plan_is_reproducible():
    a = plan_from_counts(60000, 600, 600, STEPS, 30, AnalysisPolicy())
    assert a.action == "none" and a.recommended_step_seconds == 30
    assert a == plan_from_counts(60000, 600, 600, STEPS, 30, AnalysisPolicy())


def test_bad_rates_are_clear_errors():
    with pytest.raises(ValueError, match="requests_per_second"):
        plan(0, 0.01, STEPS, 30, AnalysisPolicy())
    with pytest.raises(ValueError, match="requests > 0"):
        plan_from_counts(0, 0, 60, STEPS, 30, AnalysisPolicy())


def test_recent_traffic_reads_requests_and_non_overload_errors():
    from controller.analysis.providers.prometheus import PrometheusProvider
    p = PrometheusProvider("http://127.0.0.1:9")
    asked = []

    def query(promql):
        asked.append(promql)
        return [{"metric": {}, "value": [0, "1200.4" if "requests" in promql else "12"]}]
    p._query = query
    assert p.recent_traffic("tiny", 600) == (1200, 12)
    assert '[600s]' in asked[0] and 'error_class!="overload"' in asked[1]
