"""The gateway's per-track session counts and the overload error class."""
from prometheus_client import CollectorRegistry, Counter

from controller.gateway.metrics import LATENCY_BUCKETS, SessionTracker, overload_class


def tracker(capacity=100):
    r = CollectorRegistry()
    seen, failed = Counter("s", "s", registry=r), Counter("f", "f", registry=r)
    return SessionTracker(seen, failed, capacity), lambda: (r.get_sample_value("s_total"),
                                                             r.get_sample_value("f_total"))


def test_a_session_counts_once_and_fails_once_whatever_its_volume():
    t, read = tracker()
    for _ in range(50):
        t.observe("heavy-user", failed=True)        # always failing: still one failed session
    t.observe("light-user", failed=False)
    t.observe("light-user", failed=True)
    t.observe("light-user", failed=True)
    assert read() == (2.0, 2.0)


def test_requests_without_a_key_are_sessions_of_one_request():
    t, read = tracker()
    t.observe(None, failed=False)
    t.observe(None, failed=True)
    assert read() == (2.0, 1.0)


def test_memory_is_bounded_and_an_evicted_session_counts_again():
    t, read = tracker(capacity=2)
    for key in ("a", "b", "c", "a"):
        t.observe(key, failed=False)
    assert read() == (4.0, 0.0)
    assert len(t._known) == 2


def test_overload_needs_the_status_and_the_marker():
    marker = {"x-llm-d-request-dropped-reason": "queue full"}
    assert overload_class(429, marker) == "overload"
    assert overload_class(503, marker) == "overload"
    assert overload_class(503, {}) is None            # a plain 503 is the version's 5xx
    assert overload_class(500, marker) is None


def test_latency_buckets_are_dense_and_hold_round_slo_values():
    ratios = [b / a for a, b in zip(LATENCY_BUCKETS, LATENCY_BUCKETS[1:])]
    assert max(ratios) <= 1.34 and min(ratios) > 1
    assert {0.2, 0.5, 1.0, 2.0} <= set(LATENCY_BUCKETS)
