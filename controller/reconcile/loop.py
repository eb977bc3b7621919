"""One reconcile tick for one release: observe, decide (pure), save, then act.

The decision (phase, step, events) is committed first under the optimistic lock; the
effects of the stored phase are then applied level-triggered (effects.py), on this tick
and every later one until the world matches. A tick never waits for long work: builds,
evaluations and downloads are jobs it starts once and observes. A decision that lost its
race against a user action is dropped without any effect.
"""
from __future__ import annotations

import logging
from functools import lru_cache

from controller.analysis.analyzer import Analyzer
from controller.observability import DECISION_TO_EFFECT
from controller.domain.decide import decide
from controller.domain.low_traffic import acting_policy
from controller.domain.phase_table import TERMINAL
from controller.domain.phases import Phase
from controller.domain.release import Decision, Observations, Release
from controller.reconcile.context import Controller
from controller.reconcile.deploy_stage import candidate_version, ensure_deployed
from controller.reconcile.effects import apply_effects
from controller.reconcile.plan_stage import observe_plan
from controller.reconcile.quantize_stage import build_progress, check_gate, observe_build
from controller.reconcile.traffic_stage import candidate_weight
from controller.registry import conventions as rc
from controller.registry.types import RegistryError
from controller.store.releases import Conflict
from policies.schema import Policy

log = logging.getLogger(__name__)


def reconcile(ctx: Controller, release_id: str, known_version: int | None = None) -> Release:
    try:
        return _reconcile(ctx, release_id, known_version)
    except RegistryError as exc:
        # The registry (MLflow) failed: the release holds where it is; say so on the release, once
        # per stored state (the error itself goes on to the worker's log and error count).
        r = ctx.store.get(release_id)
        ctx.store.append_event(release_id, "registry_error", f"holding in {r.phase.value}: {exc}",
                               {"phase": r.phase.value}, ctx.clock(), dedup_key=f"registry-error-{r.row_version}")
        raise


def _reconcile(ctx: Controller, release_id: str, known_version: int | None) -> Release:
    r = ctx.store.get(release_id, known_version)
    policy = acting_policy(_policy(ctx.store, release_id), r)   # as the stored low-traffic plan says
    if r.phase in TERMINAL:
        return _settle(ctx, r, policy)
    obs, status, events = _observe(ctx, r, policy)
    d = decide(r, obs, policy)
    new = _next(r, d, status, obs)
    if d.new_window:
        new = new.evolve(status={**new.status, "analysis": _start_window(ctx, new, policy)})
    if (new.phase, new.step_index) != (r.phase, r.step_index):
        events.append(dict(kind="transition", from_phase=r.phase.value, to_phase=new.phase.value,
                           reason=d.reason, data=_transition_data(new, obs)))
    if new != r or events:
        try:
            r = ctx.store.save(r, new, events, obs.now, volatile=_only_figures(r, new, d))
        except Conflict:
            log.info("reconcile.conflict", extra={"release": r.id})  # a user action landed: act on nothing
            return ctx.store.get(release_id)
    if r.phase in TERMINAL:
        r = _settle(ctx, r, policy)
    else:
        apply_effects(ctx, r, policy)
    if events and events[-1].get("kind") == "transition":
        DECISION_TO_EFFECT.observe((ctx.clock() - obs.now).total_seconds())
    return r


@lru_cache(maxsize=4096)
def _policy(store: object, release_id: str) -> Policy:
    """A release's policy is frozen at creation: validated once, not on every tick."""
    return Policy.model_validate(store.policy_of(release_id))  # type: ignore[attr-defined]


def _settle(ctx: Controller, r: Release, policy: Policy) -> Release:
    """A terminal phase's effects are applied until they hold once; then the release is left alone."""
    if r.settled or not apply_effects(ctx, r, policy):
        return r
    ctx.store.mark_settled(r.id)
    return r.evolve(settled=True)


def _observe(ctx: Controller, r: Release, policy: Policy) -> tuple[Observations, dict, list[dict]]:
    now = ctx.clock()
    status, events = dict(r.status), []
    if r.phase == Phase.QUANTIZING:
        build = observe_build(ctx, r, policy)
        if build is not None and build.ok:
            status["build"] = {"version": build.version, "report": build.report}
        status["job"] = build_progress(ctx, r)
        return Observations(now, build=build), status, events
    status.pop("job", None)
    if r.phase == Phase.EVALUATING:
        build = observe_build(ctx, r, policy)
        gate = check_gate(r, build, policy) if build is not None else None
        return Observations(now, gate=gate), status, events
    if r.phase == Phase.DEPLOYING:
        planning = observe_plan(ctx, r, policy, status)
        outcome, choice = ensure_deployed(ctx, r)
        if "deployment" not in status:
            status["deployment"] = choice
            events.append(dict(kind="deploy_choice", reason=choice["reason"], data=choice))
        return Observations(now, deployment=outcome, planning=planning), status, events
    if r.phase in (Phase.SHADOW, Phase.CANARY):
        analyzer = Analyzer(ctx.metrics, policy.analysis)
        verdict, state = analyzer.judge(r.model, r.id, r.phase.value, now, status.get("analysis", {}))
        status["analysis"] = state
        status["verdict"] = {"decision": verdict.decision.value, "reason": verdict.reason,
                             "evidence": verdict.evidence, "at": now.isoformat()}
        return Observations(now, verdict=verdict, candidate_down=_candidate_down(ctx, r)), status, events
    if r.phase == Phase.PROMOTING:
        return Observations(now, champion=ctx.registry.get_alias(r.model, rc.ALIAS_CHAMPION),
                            serving_version=candidate_version(r)), status, events
    if r.phase == Phase.ROLLING_BACK:
        return Observations(now, candidate_weight=candidate_weight(ctx, r)), status, events
    return Observations(now), status, events


def _candidate_down(ctx: Controller, r: Release) -> str | None:
    """Why the candidate's server no longer serves, or None while it does (or is starting again)."""
    served = ctx.pool.status(r.model, candidate_version(r))
    if served is None:
        return "the pool has no server for it"
    return (served.detail or "its server failed") if served.state == "failed" else None


def _next(r: Release, d: Decision, status: dict, obs: Observations) -> Release:
    moved = (d.phase, d.step_index) != (r.phase, r.step_index)
    return r.evolve(phase=d.phase, step_index=d.step_index, reason=d.reason, paused_from=d.paused_from,
                    requested_action=None if d.clear_action else r.requested_action, status=status,
                    phase_started_at=obs.now if moved else r.phase_started_at)


def _start_window(ctx: Controller, r: Release, policy: Policy) -> dict:
    share = policy.canary.steps[r.step_index] / 100.0 if r.phase == Phase.CANARY else 0.0
    analyzer = Analyzer(ctx.metrics, policy.analysis)
    return analyzer.start_window(r.model, r.id, share, ctx.clock(), r.status.get("analysis", {}))


def _only_figures(old: Release, new: Release, d: Decision) -> bool:
    """True when a judged release changed only its running figures (verdict, counts, reason):
    nothing that an effect, a crash recovery or a user action depends on."""
    def decided(r: Release) -> tuple:
        window = (r.status.get("analysis") or {}).get("current") or {}
        return r.phase, r.step_index, r.paused_from, r.requested_action, window.get("baseline_at")
    return old.phase in (Phase.SHADOW, Phase.CANARY) and not d.new_window and decided(old) == decided(new)


def _transition_data(new: Release, obs: Observations) -> dict:
    data = {"step": new.step_index}
    if obs.verdict is not None:
        data["verdict"] = {"decision": obs.verdict.decision.value, "evidence": obs.verdict.evidence}
    return data
