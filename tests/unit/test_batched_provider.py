"""The batched metric provider: all releases answered from one grouped query per metric."""
from __future__ import annotations

from controller.analysis.providers.base import HistogramReading
from controller.analysis.providers.batched import COUNTERS, BatchedProvider
from controller.analysis.providers.prometheus import PrometheusProvider, QueryFailed


class FakeSource:
    """The wrapped provider: answers `grouped` from per-release counters, counting its queries."""

    def __init__(self, releases: int):
        self.releases = [("chat", f"rel-{i}") for i in range(releases)]
        self.queries: list[tuple[str, tuple[str, ...], str]] = []
        self.times: list[float | None] = []
        self.fail: Exception | None = None
        self.requests = {"stable": 80.0, "candidate": 20.0}
        self.candidate_errors = 0.0

    def grouped(self, metric, by, live_only=True, matchers="", at=None):
        self.queries.append((metric, by, matchers))
        self.times.append(at)
        if self.fail:
            raise self.fail
        out = []
        for model, rel in self.releases:
            base = {"model": model, "release": rel}
            if metric == "relctl_requests_total":
                out += [_row({**base, "track": t}, n) for t, n in self.requests.items()]
            elif metric == "relctl_errors_total":
                out += [_row({**base, "track": "candidate", "error_class": "http_5xx"}, self.candidate_errors),
                        _row({**base, "track": "candidate", "error_class": "overload"}, 3),
                        _row({**base, "track": "stable", "error_class": "http_5xx"}, 1)]
            elif metric == "relctl_request_duration_seconds_bucket":
                for t, n in self.requests.items():
                    out += [_row({**base, "track": t, "le": "0.5"}, n - 4), _row({**base, "track": t, "le": "+Inf"}, n)]
        return out

    def stable_latency(self, model, release_id, kind):
        return HistogramReading(buckets={float("inf"): 7.0})


def _row(labels, value):
    return {"metric": labels, "value": [0, str(value)]}


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_every_release_is_answered_from_one_query_per_metric():
    src = FakeSource(releases=300)
    p = BatchedProvider(src, refresh_seconds=1.0, clock=Clock())
    src.candidate_errors = 6
    readings = [p.read(m, r, {}) for m, r in src.releases]
    assert len(src.queries) == len(COUNTERS)                       # 5 queries for 300 releases
    assert {q[0] for q in src.queries} == {m for m, _, _ in COUNTERS.values()}
    assert all(r.ok for r in readings)
    one = readings[17]
    assert (one.stable.requests, one.candidate.requests) == (80, 20)
    assert one.candidate.errors == 6 and one.candidate.overload == 3          # overload is not the version's
    assert one.candidate.errors_by_class == {"http_5xx": 6, "overload": 3}
    assert one.stable.errors == 1 and one.shadow is None


def test_stale_snapshot_is_refreshed_and_fresh_one_reused():
    src, clock = FakeSource(releases=3), Clock()
    p = BatchedProvider(src, refresh_seconds=1.0, clock=clock)
    assert p.read("chat", "rel-0", {}).candidate.errors == 0
    src.candidate_errors = 9
    clock.t += 0.5
    assert p.read("chat", "rel-1", {}).candidate.errors == 0               # still the same snapshot
    assert p.refreshes == 1
    clock.t += 0.6
    assert p.read("chat", "rel-1", {}).candidate.errors == 0               # older than 1 s: refreshed
    p.join_refresh(5)                                                      # ... in the background
    assert p.read("chat", "rel-1", {}).candidate.errors == 9
    assert p.refreshes == 2 and len(src.queries) == 2 * len(COUNTERS)


def test_failed_query_is_an_error_measurement_for_every_release():
    src, clock = FakeSource(releases=4), Clock()
    p = BatchedProvider(src, refresh_seconds=1.0, clock=clock)
    src.fail = QueryFailed("query failed: connection refused")
    readings = [p.read(m, r, {"e2e_p99": 0.5}) for m, r in src.releases]
    assert all(not r.ok and "connection refused" in r.error for r in readings)
    assert p.refreshes == 1                                                 # no query storm while it is down
    src.fail = None
    clock.t += 1.5
    assert not p.read("chat", "rel-2", {}).ok                              # the next refresh starts
    p.join_refresh(5)
    assert p.read("chat", "rel-2", {}).ok


def test_any_exception_from_the_source_is_data_not_a_crash():
    src = FakeSource(releases=2)
    src.fail = RuntimeError("boom")
    reading = BatchedProvider(src, clock=Clock()).read("chat", "rel-0", {})
    assert reading.error and "boom" in reading.error


def test_unknown_release_reads_as_missing_series():
    reading = BatchedProvider(FakeSource(releases=2), clock=Clock()).read("chat", "rel-99", {})
    assert not reading.ok and "no relctl_requests_total series" in reading.error


def test_latency_histogram_queried_only_when_asked_with_its_edges():
    src, clock = FakeSource(releases=2), Clock()
    p = BatchedProvider(src, refresh_seconds=1.0, clock=clock)
    p.read("chat", "rel-0", {})
    assert not any(q[0].endswith("_bucket") for q in src.queries)
    reading = p.read("chat", "rel-1", {"e2e_p99": 0.5})                    # a new need forces a refresh
    assert reading.candidate.latency_over == {"e2e_p99": 4}
    hist = [q for q in src.queries if q[0] == "relctl_request_duration_seconds_bucket"]
    assert len(hist) == 1 and hist[0][1] == ("track", "le") and '0\\\\.5|\\\\+Inf' in hist[0][2]
    assert p.read("chat", "rel-0", {"e2e_p99": 0.5}).candidate.latency_over == {"e2e_p99": 4}
    assert p.refreshes == 2


def test_threshold_that_is_not_a_bucket_edge_is_an_error():
    reading = BatchedProvider(FakeSource(releases=1), clock=Clock()).read("chat", "rel-0", {"e2e_p99": 0.7})
    assert not reading.ok and "not a bucket edge" in reading.error


def test_stable_latency_goes_to_the_wrapped_provider():
    p = BatchedProvider(FakeSource(releases=1), clock=Clock())
    assert p.stable_latency("chat", "rel-0", "e2e").buckets == {float("inf"): 7.0}


def test_one_snapshot_is_evaluated_at_one_instant():
    src, wall = FakeSource(releases=2), iter(range(1000, 2000))
    p = BatchedProvider(src, clock=Clock(), wall=lambda: float(next(wall)))
    p.read("chat", "rel-0", {})
    assert src.times == [1000.0] * len(COUNTERS)


def test_incomplete_or_inconsistent_snapshot_is_an_error_not_a_reset():
    class Partial(FakeSource):
        def grouped(self, metric, by, live_only=True, matchers="", at=None):
            rows = super().grouped(metric, by, live_only, matchers, at)
            return [] if metric == "relctl_errors_total" and self.drop_errors else rows

    src = Partial(releases=1)
    src.drop_errors = True                      # the errors series went stale between two queries
    reading = BatchedProvider(src, clock=Clock()).read("chat", "rel-0", {})
    assert not reading.ok and "incomplete snapshot" in reading.error
    src.drop_errors, src.candidate_errors = False, 50   # more errors than the 20 requests
    reading = BatchedProvider(src, clock=Clock()).read("chat", "rel-0", {})
    assert not reading.ok and "inconsistent snapshot" in reading.error


def test_prometheus_grouped_query_text(monkeypatch):
    prom = PrometheusProvider("http://127.0.0.1:1")
    sent = []
    monkeypatch.setattr(prom._prom, "custom_query", lambda q, params=None: sent.append((q, params)) or [])
    prom.grouped("relctl_errors_total", ("track", "error_class"), at=1234.5)
    prom.grouped("relctl_shadow_pairs_total", ("outcome",), live_only=False)
    assert [p for _, p in sent] == [{"time": 1234.5}, None]
    sent = [q for q, _ in sent]
    assert sent == ['sum by (model, release, track, error_class) (relctl_errors_total{release!="",mode="live"})',
                    'sum by (model, release, outcome) (relctl_shadow_pairs_total{release!=""})']


def test_readers_keep_the_newest_snapshot_while_one_refreshes():
    import threading

    class Slow(FakeSource):
        def __init__(self):
            super().__init__(releases=2)
            self.entered, self.go, self.block = threading.Event(), threading.Event(), False

        def grouped(self, metric, by, live_only=True, matchers="", at=None):
            if self.block:
                self.entered.set()
                assert self.go.wait(30)
            return super().grouped(metric, by, live_only, matchers, at)

    src, clock = Slow(), Clock()
    p = BatchedProvider(src, refresh_seconds=1.0, clock=clock)
    p.read("chat", "rel-0", {})
    src.candidate_errors, src.block = 5, True
    clock.t += 10                                                          # long stale: a refresh is due
    assert p.read("chat", "rel-0", {}).candidate.errors == 0               # the reader that starts it too
    assert src.entered.wait(30)
    assert p.read("chat", "rel-1", {}).candidate.errors == 0               # not queued behind the query
    src.go.set()
    p.join_refresh(5)
    assert p.read("chat", "rel-1", {}).candidate.errors == 5 and p.refreshes == 2


def test_releases_whose_candidate_got_new_errors_are_told_after_a_refresh():
    src, clock = FakeSource(releases=3), Clock()
    p = BatchedProvider(src, refresh_seconds=1.0, clock=clock)
    told = []
    p.on_new_errors(told.append)
    p.read("chat", "rel-0", {})
    assert told == []                                                      # a first snapshot compares nothing
    clock.t += 2
    p.read("chat", "rel-0", {})
    p.join_refresh(5)
    assert told == []                                                      # no new error
    src.candidate_errors += 2
    clock.t += 2
    p.read("chat", "rel-0", {})
    p.join_refresh(5)
    assert told == [{"rel-0", "rel-1", "rel-2"}]
