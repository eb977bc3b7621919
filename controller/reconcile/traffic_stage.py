"""Keep the router's split equal to what the release's phase wants (re-applied every tick)."""
from __future__ import annotations

from controller.domain.phases import Phase
from controller.domain.release import Release
from controller.domain.routing import desired_traffic
from controller.reconcile.context import Controller
from controller.reconcile.deploy_stage import candidate_version
from controller.traffic.base import Backend, RouteSpec
from policies.schema import Policy

ROUTED_PHASES = {Phase.SHADOW, Phase.CANARY, Phase.PAUSED, Phase.PROMOTING, Phase.ROLLING_BACK}


def route_stable_only(ctx: Controller, model: str, version: str, release_id: str = "") -> bool:
    served = ctx.pool.status(model, version)
    if served is None or served.state != "ready":
        return False
    apply_if_changed(ctx, RouteSpec(model=model, backends=(Backend("stable", served.url, version),),
                                    weights={"stable": 100.0}, release_id=release_id))
    return True


def apply_if_changed(ctx: Controller, spec: RouteSpec) -> None:
    """Read the router's real state every tick (it may have restarted) and write only on a difference."""
    if ctx.router.current(spec.model) != spec:
        ctx.router.apply(spec)


def ensure_routed(ctx: Controller, r: Release, policy: Policy) -> None:
    if r.phase not in ROUTED_PHASES or (r.phase == Phase.PAUSED and r.paused_from not in ROUTED_PHASES):
        return
    want = desired_traffic(r, policy)
    cand_v = candidate_version(r)
    stable = ctx.pool.status(r.model, r.stable_version) if r.stable_version else None
    cand = ctx.pool.status(r.model, cand_v)
    backends = []
    if stable is not None and stable.state == "ready":
        backends.append(Backend("stable", stable.url, r.stable_version))
    if cand is not None and cand.state == "ready":
        backends.append(Backend("candidate", cand.url, cand_v))
    tracks = {b.track for b in backends}
    weight = want.candidate_weight if "candidate" in tracks else 0.0
    if "stable" not in tracks:
        weight = 100.0
    apply_if_changed(ctx, RouteSpec(
        model=r.model, backends=tuple(backends),
        weights={t: w for t, w in (("stable", 100.0 - weight), ("candidate", weight)) if t in tracks},
        mirror_to="candidate" if want.mirror and "candidate" in tracks else None,
        mirror_percent=want.mirror_percent, release_id=r.id,
        validators=tuple(policy.validators)))
