"""The policy's `evaluation` section: schedules, suites, limits."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from policies.evaluation import EvaluationPolicy

T0 = datetime(2026, 1, 1, 12, 30, tzinfo=timezone.utc)


def test_cron_is_a_utc_crontab():
    policy = EvaluationPolicy(cron="0 3 * * *")
    assert policy.scheduled
    assert policy.trigger().get_next_fire_time(None, T0) == datetime(2026, 1, 2, 3, 0, tzinfo=timezone.utc)


def test_interval_schedule():
    trigger = EvaluationPolicy(interval_seconds=90).trigger()
    first = trigger.get_next_fire_time(None, T0)
    assert (trigger.get_next_fire_time(first, first) - first).total_seconds() == 90


def test_no_schedule_by_default():
    policy = EvaluationPolicy()
    assert not policy.scheduled and policy.trigger() is None and policy.suites == ["builtin:small"]


@pytest.mark.parametrize("raw, field, message", [
    ({"cron": "every day"}, "cron", "not a 5-field crontab"),
    ({"cron": "61 * * * *"}, "cron", "not a 5-field crontab"),
    ({"cron": "0 3 * * *", "interval_seconds": 60}, "", "either cron or interval_seconds"),
    ({"interval_seconds": 0}, "interval_seconds", "greater than 0"),
    ({"interval_seconds": True}, "interval_seconds", "valid number"),
    ({"suites": ["builtin:nope"]}, "suites", "unknown built-in suite 'builtin:nope'"),
    ({"suites": []}, "suites", "at least 1"),
    ({"max_accuracy_drop_pct": -1}, "max_accuracy_drop_pct", "greater than or equal to 0"),
    ({"crons": "0 3 * * *"}, "crons", "Extra inputs"),
])
def test_bad_sections_name_the_field(raw, field, message):
    with pytest.raises(ValidationError) as err:
        EvaluationPolicy.model_validate(raw)
    first = err.value.errors()[0]
    assert ".".join(str(p) for p in first["loc"]) == field
    assert message in first["msg"]
