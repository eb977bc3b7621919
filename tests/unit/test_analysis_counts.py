"""The JSON form of counts kept in the release row: hand-written (a tick's hot path), so it must
keep every field of the dataclasses and round-trip."""
from dataclasses import asdict

from controller.analysis import counts
from controller.analysis.types import Measurement, ShadowCounts, TrackCounts, Window

TRACK = TrackCounts(requests=50, errors=3, errors_by_class={"timeout": 2, "http_5xx": 1},
                    latency_over={"e2e_p99": 4}, overload=1, sessions=9, sessions_failed=2)
SHADOW = ShadowCounts(pairs=40, only_candidate_failed=3, only_stable_failed=1)


def test_every_field_is_kept_and_read_back():
    w = Window(0.2, 30.0, TRACK, TrackCounts(requests=10, errors=1), SHADOW)
    d = counts.window_to_dict(w)
    assert d["stable"] == asdict(TRACK) and d["shadow"] == asdict(SHADOW)
    assert counts.window_from_dict(d) == w
    m = Measurement(TRACK, TRACK, SHADOW)
    assert counts.measurement_from_dict(counts.measurement_to_dict(m)) == m


def test_the_dict_form_is_a_copy():
    d = counts.measurement_to_dict(Measurement(TRACK, TRACK, None))
    d["stable"]["errors_by_class"]["timeout"] = 99
    assert TRACK.errors_by_class["timeout"] == 2


def test_window_counts_are_the_difference_and_a_reset_is_refused():
    base = Measurement(TrackCounts(requests=10, errors=1), TrackCounts(requests=5), ShadowCounts(pairs=4))
    stable, candidate, shadow = counts.subtract(Measurement(TRACK, TRACK, SHADOW), base)
    assert (stable.requests, stable.errors, candidate.requests, shadow.pairs) == (40, 2, 45, 36)
    try:
        counts.subtract(base, Measurement(TRACK, TRACK, SHADOW))
    except counts.CounterReset as exc:
        assert "went from" in str(exc)
    else:
        raise AssertionError("a counter going down must raise CounterReset")
