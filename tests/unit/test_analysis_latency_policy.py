"""Latency thresholds on bucket edges, and policy validation."""
import math

import pytest

from controller.analysis import latency
from policies.loader import PolicyError, parse_policy


def test_threshold_snaps_up_to_a_bucket_edge():
    buckets = {0.1: 10, 0.25: 50, 0.5: 94, 1.0: 99, 2.5: 100, math.inf: 100}
    assert latency.threshold_from_buckets(buckets, 0.5) == 0.25
    assert latency.threshold_from_buckets(buckets, 0.95) == 1.0
    assert latency.threshold_from_buckets(buckets, 0.99) == 1.0


def test_threshold_unknown_when_percentile_is_in_the_inf_bucket_or_no_data():
    assert latency.threshold_from_buckets({0.1: 50, math.inf: 100}, 0.99) is None
    assert latency.threshold_from_buckets({0.1: 0, math.inf: 0}, 0.5) is None


def test_metric_keys_round_trip():
    assert latency.metric_key("e2e", 0.99) == "e2e_p99"
    assert latency.metric_key("ttft", 0.999) == "ttft_p99.9"
    assert latency.quantile_of("ttft_p99.9") == pytest.approx(0.999)
    with pytest.raises(ValueError, match="unknown latency kind"):
        latency.metric_key("itl", 0.5)


def test_effect_stays_possible_for_the_median():
    assert latency.effect_for(0.5, 3.0) == pytest.approx(1.5)
    assert latency.effect_for(0.99, 1.5) == 1.5


def test_policy_defaults_are_valid_and_old_fields_still_work():
    p = parse_policy({"analysis": {"alpha": 0.01, "min_requests": 10}})
    assert p.analysis.alpha == 0.01 and p.analysis.min_requests == 10
    assert p.analysis.latency_quantiles == [0.5, 0.95, 0.99]


@pytest.mark.parametrize("field,value,message", [
    ("alpha", 0.7, "analysis.alpha"),
    ("min_effect", 1.0, "analysis.min_effect"),
    ("latency_quantiles", [0.5, 1.0], "strictly between 0 and 1"),
    ("latency_metrics", ["e2e", "itl"], "analysis.latency_metrics"),
    ("alhpa", 0.05, "Extra inputs are not permitted"),
])
def test_policy_rejects_bad_values_clearly(field, value, message):
    with pytest.raises(PolicyError, match=message):
        parse_policy({"analysis": {field: value}})


def test_promql_label_values_are_escaped():
    from controller.analysis.providers.prometheus import label
    assert label('a"b\\c') == '"a\\"b\\\\c"'


def test_unknown_provider_name_lists_the_known_ones():
    from controller.analysis.providers import make_provider
    with pytest.raises(ValueError, match="known: prometheus"):
        make_provider("datadog")


def test_provider_url_is_checked():
    from controller.analysis.providers.prometheus import PrometheusProvider
    with pytest.raises(ValueError, match="http"):
        PrometheusProvider("localhost:9090")
