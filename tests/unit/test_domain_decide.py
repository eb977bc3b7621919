"""The release state machine, rule by rule, on a fake clock."""
from datetime import datetime, timedelta, timezone

import pytest

from controller.analysis.types import Decision as V, Verdict
from controller.domain.decide import decide
from controller.domain.phase_table import can_transition
from controller.domain.phases import Phase
from controller.domain.release import (BuildOutcome, DeployOutcome, GateOutcome, Observations, Release,
                                       UserAction)
from controller.domain.routing import desired_traffic
from policies.schema import Policy

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
POLICY = Policy.model_validate({"shadow": {"duration_seconds": 10}, "canary": {"steps": [10, 50], "step_seconds": 20}})


def rel(phase: Phase, step: int = 0, **kw) -> Release:
    return Release(id="r1", model="m", candidate_version="2", stable_version="1", phase=phase,
                   phase_started_at=T0, step_index=step, **kw)


def at(seconds: float, **kw) -> Observations:
    return Observations(now=T0 + timedelta(seconds=seconds), **kw)


def verdict(decision: V) -> Verdict:
    return Verdict(decision, f"judge says {decision}")


@pytest.mark.parametrize("release, obs, phase, step", [
    (rel(Phase.PENDING), at(0), Phase.QUANTIZING, 0),
    (rel(Phase.QUANTIZING), at(5), Phase.QUANTIZING, 0),
    (rel(Phase.QUANTIZING), at(5, build=BuildOutcome(True, "3")), Phase.EVALUATING, 0),
    (rel(Phase.QUANTIZING), at(5, build=BuildOutcome(False, error="boom")), Phase.FAILED, 0),
    (rel(Phase.EVALUATING), at(1, gate=GateOutcome(True, "ok")), Phase.DEPLOYING, 0),
    (rel(Phase.EVALUATING), at(1, gate=GateOutcome(False, "quality gate failed: ppl +40%")), Phase.FAILED, 0),
    (rel(Phase.DEPLOYING), at(5, deployment=DeployOutcome("starting")), Phase.DEPLOYING, 0),
    (rel(Phase.DEPLOYING), at(601, deployment=DeployOutcome("starting")), Phase.FAILED, 0),
    (rel(Phase.DEPLOYING), at(5, deployment=DeployOutcome("failed", "oom")), Phase.FAILED, 0),
    (rel(Phase.DEPLOYING), at(5, deployment=DeployOutcome("ready")), Phase.SHADOW, 0),
    (rel(Phase.SHADOW), at(5, verdict=verdict(V.CONTINUE)), Phase.SHADOW, 0),
    (rel(Phase.SHADOW), at(11, verdict=verdict(V.CONTINUE)), Phase.CANARY, 0),
    (rel(Phase.SHADOW), at(11, verdict=verdict(V.INCONCLUSIVE)), Phase.SHADOW, 0),
    (rel(Phase.SHADOW), at(1, verdict=verdict(V.ROLLBACK)), Phase.ROLLING_BACK, 0),
    (rel(Phase.CANARY), at(5, verdict=verdict(V.PROMOTE)), Phase.CANARY, 0),          # soak not met
    (rel(Phase.CANARY), at(21, verdict=verdict(V.PROMOTE)), Phase.CANARY, 1),
    (rel(Phase.CANARY), at(21, verdict=verdict(V.CONTINUE)), Phase.CANARY, 0),
    (rel(Phase.CANARY, 1), at(21, verdict=verdict(V.PROMOTE)), Phase.PROMOTING, 1),
    (rel(Phase.CANARY, 1), at(1, verdict=verdict(V.ROLLBACK)), Phase.ROLLING_BACK, 1),
    (rel(Phase.CANARY), at(1, verdict=verdict(V.PAUSE)), Phase.PAUSED, 0),
    (rel(Phase.PROMOTING), at(1), Phase.PROMOTING, 0),                               # alias not read yet
    (rel(Phase.PROMOTING), at(1, champion="1", serving_version="2"), Phase.PROMOTING, 0),
    (rel(Phase.PROMOTING), at(1, champion="2", serving_version="2"), Phase.SUCCEEDED, 0),
    (rel(Phase.ROLLING_BACK), at(1), Phase.ROLLING_BACK, 0),                         # router not read yet
    (rel(Phase.ROLLING_BACK), at(1, candidate_weight=5.0), Phase.ROLLING_BACK, 0),
    (rel(Phase.ROLLING_BACK), at(1, candidate_weight=0.0), Phase.ROLLED_BACK, 0),
    (rel(Phase.SUCCEEDED), at(1, verdict=verdict(V.ROLLBACK)), Phase.SUCCEEDED, 0),
])
def test_transitions(release, obs, phase, step):
    d = decide(release, obs, POLICY)
    assert (d.phase, d.step_index) == (phase, step)
    assert d.phase == release.phase or can_transition(release.phase, d.phase)


def test_rollback_reason_carries_the_verdict():
    d = decide(rel(Phase.CANARY), at(1, verdict=Verdict(V.ROLLBACK, "candidate errors 9 of 10")), POLICY)
    assert "candidate errors 9 of 10" in d.reason


def test_new_window_on_each_analysed_phase():
    assert decide(rel(Phase.DEPLOYING), at(1, deployment=DeployOutcome("ready")), POLICY).new_window
    assert decide(rel(Phase.CANARY), at(21, verdict=verdict(V.PROMOTE)), POLICY).new_window
    assert not decide(rel(Phase.CANARY), at(1, verdict=verdict(V.CONTINUE)), POLICY).new_window


def test_quantization_disabled_goes_straight_to_deploying():
    policy = Policy.model_validate({"quantize": {"enabled": False}})
    assert decide(rel(Phase.PENDING), at(0), policy).phase == Phase.DEPLOYING


def test_no_shadow_goes_straight_to_canary():
    policy = Policy.model_validate({"shadow": {"duration_seconds": 0}})
    d = decide(rel(Phase.DEPLOYING), at(1, deployment=DeployOutcome("ready")), policy)
    assert (d.phase, d.step_index, d.new_window) == (Phase.CANARY, 0, True)


@pytest.mark.parametrize("phase, action, expected", [
    (Phase.CANARY, UserAction.ABORT, Phase.ABORTED),
    (Phase.QUANTIZING, UserAction.ABORT, Phase.ABORTED),
    (Phase.CANARY, UserAction.PAUSE, Phase.PAUSED),
    (Phase.SHADOW, UserAction.PROMOTE, Phase.PROMOTING),
    (Phase.QUANTIZING, UserAction.PROMOTE, Phase.QUANTIZING),   # not possible yet: dropped with a reason
    (Phase.ROLLING_BACK, UserAction.ABORT, Phase.ROLLING_BACK),
])
def test_user_actions(phase, action, expected):
    d = decide(rel(phase, requested_action=action), at(1), POLICY)
    assert d.phase == expected and d.clear_action


def test_pause_then_resume_restores_phase_and_step():
    paused = decide(rel(Phase.CANARY, 1, requested_action=UserAction.PAUSE), at(1), POLICY)
    assert (paused.phase, paused.paused_from) == (Phase.PAUSED, Phase.CANARY)
    r = rel(Phase.PAUSED, 1, paused_from=Phase.CANARY, requested_action=UserAction.RESUME)
    resumed = decide(r, at(2), POLICY)
    assert (resumed.phase, resumed.step_index, resumed.new_window) == (Phase.CANARY, 1, True)


def test_ignored_action_says_why():
    d = decide(rel(Phase.PENDING, requested_action=UserAction.RESUME), at(0), POLICY)
    assert "ignored resume" in d.reason


@pytest.mark.parametrize("phase, step, paused_from, weight, mirror", [
    (Phase.DEPLOYING, 0, None, 0, False),
    (Phase.SHADOW, 0, None, 0, True),
    (Phase.CANARY, 1, None, 50, False),
    (Phase.PAUSED, 0, Phase.CANARY, 10, False),
    (Phase.PROMOTING, 1, None, 100, False),
    (Phase.ROLLING_BACK, 1, None, 0, False),
])
def test_desired_traffic(phase, step, paused_from, weight, mirror):
    want = desired_traffic(rel(phase, step, paused_from=paused_from), POLICY)
    assert (want.candidate_weight, want.mirror) == (weight, mirror)


def test_terminal_phases_accept_no_transition():
    for phase in (Phase.SUCCEEDED, Phase.ROLLED_BACK, Phase.FAILED, Phase.ABORTED):
        assert not can_transition(phase, Phase.CANARY)
