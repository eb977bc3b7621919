"""What traffic split a release wants in each phase (pure)."""
from __future__ import annotations

from dataclasses import dataclass

from controller.domain.phases import Phase
from controller.domain.release import Release
from policies.schema import Policy


@dataclass(frozen=True)
class DesiredTraffic:
    candidate_weight: float       # percent of live traffic to the candidate
    mirror: bool                  # mirror live traffic to the candidate (shadow)
    mirror_percent: float = 100.0


STABLE_ONLY = DesiredTraffic(0.0, False)


def desired_traffic(release: Release, policy: Policy) -> DesiredTraffic:
    phase = release.paused_from if release.phase == Phase.PAUSED else release.phase
    if phase == Phase.SHADOW:
        return DesiredTraffic(0.0, True, policy.shadow.mirror_percent)
    if phase == Phase.CANARY:
        return DesiredTraffic(policy.canary.steps[release.step_index], False)
    if phase in (Phase.PROMOTING, Phase.SUCCEEDED):
        return DesiredTraffic(100.0, False)
    return STABLE_ONLY
