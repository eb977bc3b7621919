"""PrometheusProvider.read: all queries of one reading at one instant, and an inconsistent
reading (errors above requests, as when series are scraped at different moments) is an error
measurement -- inconclusive -- never a crash or a counter reset."""
from controller.analysis.providers.prometheus import PrometheusProvider


class FakePrometheus:
    def __init__(self, answers):
        self.answers, self.times = answers, []

    def custom_query(self, promql, params=None):
        self.times.append((params or {}).get("time"))
        for needle, rows in self.answers.items():
            if needle in promql:
                return rows
        return []


def row(value, **labels):
    return {"metric": labels, "value": [0, str(value)]}


def provider(answers):
    p = PrometheusProvider("http://127.0.0.1:9")
    p._prom = FakePrometheus(answers)
    return p


def test_every_query_of_a_reading_is_pinned_to_one_instant():
    p = provider({"relctl_requests_total": [row(10, track="stable"), row(5, track="candidate")],
                  "relctl_errors_total": [row(1, track="candidate", error_class="http_5xx")]})
    m = p.read("chat", "rel-1", {})
    assert m.ok and m.candidate.errors == 1 and m.stable.requests == 10
    assert len(set(p._prom.times)) == 1 and p._prom.times[0] is not None


def test_errors_above_requests_is_an_inconclusive_reading():
    p = provider({"relctl_requests_total": [row(10, track="stable"), row(2, track="candidate")],
                  "relctl_errors_total": [row(3, track="candidate", error_class="timeout")]})
    m = p.read("chat", "rel-1", {})
    assert not m.ok and "inconsistent reading" in m.error
