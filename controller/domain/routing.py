"""What traffic split a release wants in each phase (pure; the phase table names the kind)."""
from __future__ import annotations

from dataclasses import dataclass

from controller.domain.low_traffic import holds_in_shadow
from controller.domain.phase_table import Traffic, traffic_of
from controller.domain.release import Release
from policies.schema import Policy


@dataclass(frozen=True)
class DesiredTraffic:
    candidate_weight: float       # percent of live traffic to the candidate
    mirror: bool                  # mirror live traffic to the candidate (shadow)
    mirror_percent: float = 100.0


STABLE_ONLY = DesiredTraffic(0.0, False)


def desired_traffic(release: Release, policy: Policy) -> DesiredTraffic | None:
    """None when the release does not route (the champion keeper does)."""
    traffic = traffic_of(release)
    if traffic == Traffic.MIRROR:
        # The low-traffic plan's shadow mirrors every request: its time was estimated for that.
        return DesiredTraffic(0.0, True, 100.0 if holds_in_shadow(release) else policy.shadow.mirror_percent)
    if traffic == Traffic.CANARY:
        return DesiredTraffic(policy.canary.steps[release.step_index], False)
    if traffic in (Traffic.CANDIDATE, Traffic.NEW_CHAMPION):
        return DesiredTraffic(100.0, False)
    if traffic == Traffic.STABLE:
        return STABLE_ONLY
    return None
