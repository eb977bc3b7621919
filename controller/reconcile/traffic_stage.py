"""Keep the router's split equal to what the release's phase wants (re-applied every tick)."""
from __future__ import annotations

from controller.domain.phase_table import Traffic, traffic_of
from controller.domain.release import Release
from controller.domain.routing import desired_traffic
from controller.reconcile.context import Controller
from controller.reconcile.deploy_stage import candidate_version, ensure_serving
from controller.traffic.base import Backend, RouteSpec
from policies.schema import Policy


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


def candidate_weight(ctx: Controller, r: Release) -> float:
    """The candidate's real share in the router now (0 when it has no backend)."""
    route = ctx.router.current(r.model)
    if route is None or not any(b.track == "candidate" for b in route.backends):
        return 0.0
    return float(route.weights.get("candidate", 0.0)) + (100.0 if route.mirror_to == "candidate" else 0.0)


def _route_stable(ctx: Controller, r: Release) -> bool:
    """All traffic to the stable version (started again if its server is gone); with no stable
    version at all, the candidate's route is removed. False while the stable is not back yet."""
    if r.stable_version is None:
        if candidate_weight(ctx, r) > 0:
            ctx.router.remove(r.model)
        return True
    if route_stable_only(ctx, r.model, r.stable_version, r.id):
        return True
    ensure_serving(ctx, r.model, r.stable_version, r.id)
    return False


def ensure_routed(ctx: Controller, r: Release, policy: Policy) -> bool:
    """Program the split the release's phase wants, with the backends that are ready.
    False while a version that must take all traffic has no ready server yet."""
    if traffic_of(r) == Traffic.NEW_CHAMPION:
        return route_stable_only(ctx, r.model, candidate_version(r), r.id)
    want = desired_traffic(r, policy)
    if want is None:
        return True
    if want.candidate_weight == 0.0 and not want.mirror:
        return _route_stable(ctx, r)
    cand_v = candidate_version(r)
    stable = ctx.pool.status(r.model, r.stable_version) if r.stable_version else None
    cand = ctx.pool.status(r.model, cand_v)
    backends = []
    if stable is not None and stable.state == "ready":
        backends.append(Backend("stable", stable.url, r.stable_version or ""))
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
    return True
