"""The phase table is the one place phases are defined: decide stays within its targets."""
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.analysis.types import Decision as V
from controller.analysis.types import Verdict
from controller.domain.decide import decide
from controller.domain.phase_table import PHASES, TERMINAL, Effect, Traffic, can_transition, owns_routes
from controller.domain.phases import Phase
from controller.domain.release import BuildOutcome, DeployOutcome, GateOutcome, Observations, Release, UserAction
from policies.schema import Policy

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
POLICY = Policy.model_validate({"shadow": {"duration_seconds": 10}, "canary": {"steps": [10, 50],
                                                                              "step_seconds": 20}})

observations = st.builds(
    Observations,
    now=st.integers(0, 2000).map(lambda s: T0 + timedelta(seconds=s)),
    build=st.none() | st.builds(BuildOutcome, ok=st.booleans(), version=st.just("3"), error=st.just("boom")),
    gate=st.none() | st.builds(GateOutcome, ok=st.booleans(), reason=st.just("gate")),
    deployment=st.none() | st.sampled_from([DeployOutcome("ready"), DeployOutcome("starting"),
                                            DeployOutcome("failed", "oom")]),
    verdict=st.none() | st.sampled_from(list(V)).map(lambda d: Verdict(d, "judge")),
    champion=st.sampled_from([None, "1", "2"]),
    serving_version=st.sampled_from([None, "2"]),
    candidate_weight=st.sampled_from([None, 0.0, 10.0]),
)


@st.composite
def releases(draw):
    phase = draw(st.sampled_from(list(Phase)))
    paused_from = draw(st.sampled_from([p for p in Phase if PHASES[p].interruptible])) \
        if phase == Phase.PAUSED else None
    return Release(id="rel-1", model="m", candidate_version="2", stable_version="1", phase=phase,
                   phase_started_at=T0, step_index=draw(st.integers(0, 1)), paused_from=paused_from,
                   requested_action=draw(st.none() | st.sampled_from(list(UserAction))))


@settings(max_examples=1500, deadline=None)
@given(releases(), observations)
def test_decide_moves_only_to_allowed_targets(release, obs):
    d = decide(release, obs, POLICY)
    assert can_transition(release.phase, d.phase), (release.phase, d.phase, d.reason)
    if d.phase == Phase.PAUSED and release.phase != Phase.PAUSED:
        assert d.paused_from == release.phase
    if release.phase in TERMINAL:
        assert d.phase == release.phase


@settings(max_examples=500, deadline=None)
@given(releases(), observations)
def test_promote_only_a_deployed_candidate(release, obs):
    d = decide(release, obs, POLICY)
    if d.phase == Phase.PROMOTING and release.phase != Phase.PROMOTING:
        serving = release.paused_from if release.phase == Phase.PAUSED else release.phase
        assert serving in (Phase.SHADOW, Phase.CANARY)


def test_terminal_phases_have_no_handler_and_no_targets():
    assert TERMINAL == {Phase.SUCCEEDED, Phase.ROLLED_BACK, Phase.FAILED, Phase.ABORTED}
    assert all(PHASES[p].handler is None and not PHASES[p].targets for p in TERMINAL)


def test_every_phase_that_ends_badly_stops_the_candidate_and_routes_to_stable():
    for phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK, Phase.FAILED, Phase.ABORTED):
        spec = PHASES[phase]
        assert spec.traffic == Traffic.STABLE
        assert {Effect.ROUTE, Effect.CANCEL_JOBS, Effect.STOP_CANDIDATE} <= set(spec.effects)


def test_routes_are_owned_while_the_candidate_is_deployed_or_paused_there():
    def rel(phase, paused_from=None):
        return Release("r", "m", "2", "1", phase, T0, paused_from=paused_from)
    assert not owns_routes(rel(Phase.QUANTIZING))
    assert owns_routes(rel(Phase.CANARY))
    assert owns_routes(rel(Phase.PAUSED, Phase.SHADOW))
    assert not owns_routes(rel(Phase.PAUSED, Phase.QUANTIZING))
    assert not owns_routes(rel(Phase.SUCCEEDED))
