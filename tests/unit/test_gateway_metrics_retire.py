"""An ended release's series leave the gateway's /metrics a while after its route went away, so
its memory does not grow with the releases it served; series still routed stay."""
from __future__ import annotations

from prometheus_client import generate_latest

from controller.gateway.metrics import RETIRE_AFTER_SECONDS
from controller.gateway.state import GatewayConfig, GatewayState
from controller.traffic.base import Backend, RouteSpec


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _route(release: str, stable: str, candidate: str | None) -> RouteSpec:
    backends = [Backend("stable", "http://127.0.0.1:9001", stable)]
    weights = {"stable": 100.0}
    if candidate:
        backends.append(Backend("candidate", "http://127.0.0.1:9002", candidate))
        weights = {"stable": 80.0, "candidate": 20.0}
    return RouteSpec(model="chat", backends=tuple(backends), weights=weights, release_id=release)


def _exported(state: GatewayState) -> str:
    return generate_latest(state.metrics.registry).decode()


def _state() -> tuple[GatewayState, Clock]:
    clock = Clock()
    return GatewayState(GatewayConfig(admin_token="t"), clock=clock), clock


def test_a_finished_release_is_dropped_after_the_grace_time_and_its_successor_kept():
    state, clock = _state()
    state.apply_route(_route("rel-a", "1", "2"))
    state.apply_route(_route("rel-a", "1", "2"))                   # a weight change: same series
    state.apply_route(_route("", "2", None))                       # ended: the champion's route
    assert 'release="rel-a"' in _exported(state)                    # Prometheus still gets the final values
    clock.now += RETIRE_AFTER_SECONDS + 1
    state.apply_route(_route("rel-b", "2", "3"))
    text = _exported(state)
    assert 'release="rel-a"' not in text
    assert 'relctl_requests_total{mode="live",model="chat",release="",track="stable",version="2"}' in text
    assert 'release="rel-b"' in text and 'version="3"' in text


def test_a_release_routed_again_before_the_grace_time_keeps_its_series():
    state, clock = _state()
    state.apply_route(_route("rel-a", "1", "2"))
    state.remove_route("chat")
    clock.now += RETIRE_AFTER_SECONDS / 2
    state.apply_route(_route("rel-a", "1", "2"))                   # e.g. the gateway was told again
    clock.now += RETIRE_AFTER_SECONDS
    state.apply_route(_route("rel-a", "1", "2"))
    assert 'release="rel-a",track="candidate",version="2"' in _exported(state)


def test_the_champions_old_version_goes_when_the_champion_moves():
    state, clock = _state()
    state.apply_route(_route("", "1", None))
    state.apply_route(_route("", "2", None))
    clock.now += RETIRE_AFTER_SECONDS + 1
    state.remove_route("other-model")                               # nothing to remove: no sweep either
    state.apply_route(_route("", "2", None))
    text = _exported(state)
    assert 'version="1"' not in text and 'version="2"' in text
