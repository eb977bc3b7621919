"""Report data from recorded releases (API JSON shapes; verdict evidence from the real judge)."""
import json
from pathlib import Path

import pytest

from controller.report.extract import extract, phase_changes, speed_summary, weights_over_time

DATA = Path(__file__).parent / "data"


def recorded(name):
    d = json.loads((DATA / f"release_{name}.json").read_text())
    return extract(d["release"], d["events"], d["policy"]["canary"]["steps"], d["audit"])


def test_phase_changes_name_their_cause():
    r = recorded("succeeded")
    path = [(c.from_phase, c.to_phase, c.cause) for c in r.changes]
    assert path[0] == (None, "pending", "registry")
    assert ("canary", "paused", "user (pause requested)") in path
    assert ("paused", "canary", "user (resume requested)") in path
    assert path[-1] == ("promoting", "succeeded", "controller")
    assert not r.active and r.phase == "succeeded"


def test_weights_follow_the_policy_steps_and_hold_while_paused():
    r = recorded("succeeded")
    seq = [(c.to_phase, w.candidate, w.mirror) for c, w in zip(r.changes, r.weights)]
    assert ("shadow", 0.0, True) in seq
    canary = [w for p, w, _ in seq if p == "canary"]
    assert canary == [20.0, 20.0, 50.0]            # step 1, resumed at step 1, step 2
    assert ("paused", 20.0, False) in seq
    assert seq[-2:] == [("promoting", 100.0, False), ("succeeded", 100.0, False)]


def test_rollback_returns_all_traffic_to_stable():
    r = recorded("rolled_back")
    assert [(c.to_phase, w.candidate) for c, w in zip(r.changes, r.weights)][-3:] == [
        ("canary", 20.0), ("rolling_back", 0.0), ("rolled_back", 0.0)]


def test_evidence_points_come_from_transitions_and_the_latest_verdict():
    r = recorded("rolled_back")
    errors = [p for p in r.evidence if p.test == "errors"]
    assert [p.test for p in r.evidence].count("shadow") == 1
    assert len(errors) == 1                         # the rollback event and status.verdict are the same point
    assert errors[0].e_value >= errors[0].threshold and errors[0].decision == "rollback"
    ok = recorded("succeeded")
    assert all(p.e_value < p.threshold for p in ok.evidence)
    assert len([p for p in ok.evidence if p.test == "errors"]) == 2


def test_windows_quality_and_deployment():
    r = recorded("succeeded")
    assert [w.label for w in r.windows] == ["shadow", "canary 20%", "canary 50%"]
    assert (r.windows[1].stable_requests, r.windows[1].candidate_requests) == (270, 66)
    assert r.windows[0].shadow_pairs == 320
    assert r.quality["evaluated_on"].startswith("vllm") and r.deployment["version"] == "3"


def test_audit_summary_counts_tracks_and_status_classes():
    d = json.loads((DATA / "release_succeeded.json").read_text())
    audit = [{"at": f"2026-12-02T18:0{i}:00+00:00", "track": t, "mode": m, "status": s}
             for i, (t, m, s) in enumerate([("stable", "live", 200), ("candidate", "live", 200),
                                            ("candidate", "shadow", 502), ("stable", "live", 200)])]
    a = extract(d["release"], d["events"], None, audit).audit
    assert a["records"] == 4 and a["by_track"]["stable live"] == 2
    assert a["by_status"] == {"2xx": 3, "5xx": 1}
    assert (a["first"], a["last"]) == (audit[0]["at"], audit[-1]["at"])


@pytest.mark.parametrize("steps", [None, []])
def test_unknown_steps_give_unknown_canary_weight(steps):
    events = [{"at": "2026-12-02T18:00:00+00:00", "kind": "transition", "from_phase": "shadow",
               "to_phase": "canary", "reason": "", "data": {"step": 0}}]
    assert weights_over_time(phase_changes(events), steps)[0].candidate is None


def test_a_new_release_extracts_without_status():
    release = {"id": "rel-1", "model": "m", "candidate_version": "2", "stable_version": None, "phase": "pending",
               "step_index": 0, "reason": "", "status": {}}
    r = extract(release, [], None, None)
    assert r.active and r.changes == [] and r.windows == [] and r.evidence == [] and r.audit == {}


SPEED = {"measured": True, "passed": False, "action": "deploy_full_precision",
         "reason": "speed gate failed (c=8: throughput ratio 0.61 < 0.8):\n| conc | side |",
         "comparison": {"parent": [{"concurrency": 1, "requests": 64, "errors": 0, "ttft_p50_ms": 40.0},
                                   {"concurrency": 8, "requests": 64, "errors": 0, "ttft_p50_ms": 60.0}],
                        "build": [{"concurrency": 1, "requests": 64, "errors": 0, "ttft_p50_ms": 44.0},
                                  {"concurrency": 8, "requests": 64, "errors": 1, "ttft_p50_ms": 90.0}]}}


def test_speed_summary_pairs_each_level_and_keeps_the_decision():
    s = speed_summary({"version": "3", "report": {"speed": SPEED}})
    assert s.measured and s.decision == "failed: deploy_full_precision"
    assert s.reason == "speed gate failed (c=8: throughput ratio 0.61 < 0.8)"      # the table is drawn apart
    assert [(lv.concurrency, lv.parent["ttft_p50_ms"], lv.build["errors"]) for lv in s.levels] == \
        [(1, 40.0, 0), (8, 60.0, 1)]


@pytest.mark.parametrize("build, reason", [
    ({}, "the release has no build report"),
    ({"version": "3", "report": {"quality": {}}}, "the build report has no speed measurement"),
    ({"version": "3", "report": {"speed": None}}, "the build report has no speed measurement"),
    ({"version": "3", "report": {"speed": {"measured": False, "reason": "policy quality.evaluate_on is 'cpu'"}}},
     "policy quality.evaluate_on is 'cpu'"),
])
def test_speed_summary_says_why_nothing_was_measured(build, reason):
    s = speed_summary(build)
    assert not s.measured and s.reason == reason and s.levels == [] and s.decision == ""


def test_recorded_release_without_speed_and_old_verdicts_without_figures():
    assert recorded("succeeded").speed.reason == "the build report has no speed measurement"
    old = speed_summary({"version": "3", "report": {"speed": {"passed": True, "action": "proceed",
                                                              "reason": "within limits"}}})
    assert old.measured and old.decision == "passed" and old.levels == []
