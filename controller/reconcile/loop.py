"""One reconcile tick for one release: observe, decide (pure), apply effects, write once.

Effects are applied before the new state is written and every effect is idempotent, so
a crash anywhere just repeats the tick: no duplicate deployment, no lost event.
"""
from __future__ import annotations

import logging

from controller.analysis.analyzer import Analyzer
from controller.domain.decide import decide
from controller.domain.phases import TERMINAL, Phase
from controller.domain.release import Decision, Observations, Release
from controller.reconcile.context import Controller
from controller.reconcile.deploy_stage import candidate_version, ensure_deployed
from controller.reconcile.quantize_stage import check_gate, ensure_quantized
from controller.reconcile.traffic_stage import ensure_routed, route_stable_only
from controller.registry import conventions as rc
from controller.store.releases import Conflict
from policies.schema import Policy

log = logging.getLogger(__name__)


def reconcile(ctx: Controller, release_id: str) -> Release:
    r = ctx.store.get(release_id)
    if r.phase in TERMINAL:
        return r
    policy = Policy.model_validate(ctx.store.policy_of(release_id))
    ensure_routed(ctx, r, policy)
    obs, status, events = _observe(ctx, r, policy)
    d = decide(r, obs, policy)
    new = _next(r, d, status, obs)
    if d.new_window:
        new = new.evolve(status={**new.status, "analysis": _start_window(ctx, new, policy)})
    if (new.phase, new.step_index) != (r.phase, r.step_index):
        events.append(dict(kind="transition", from_phase=r.phase.value, to_phase=new.phase.value,
                           reason=d.reason, data=_transition_data(new, obs)))
        _apply_entry_effects(ctx, new, policy)
    if new == r and not events:
        return r
    try:
        return ctx.store.save(r, new, events, obs.now)
    except Conflict:
        log.info("reconcile.conflict", extra={"release": r.id})  # a user action landed; next tick
        return ctx.store.get(release_id)


def _observe(ctx: Controller, r: Release, policy: Policy) -> tuple[Observations, dict, list[dict]]:
    now = ctx.clock()
    status, events = dict(r.status), []
    if r.phase == Phase.QUANTIZING:
        build = ensure_quantized(ctx, r, policy)
        if build.ok:
            status["build"] = {"version": build.version, "report": build.report}
        return Observations(now, build=build), status, events
    if r.phase == Phase.EVALUATING:
        build = ensure_quantized(ctx, r, policy)
        return Observations(now, gate=check_gate(r, build, policy)), status, events
    if r.phase == Phase.DEPLOYING:
        outcome, choice = ensure_deployed(ctx, r)
        if "deployment" not in status:
            status["deployment"] = choice
            events.append(dict(kind="deploy_choice", reason=choice["reason"], data=choice))
        return Observations(now, deployment=outcome), status, events
    if r.phase in (Phase.SHADOW, Phase.CANARY):
        analyzer = Analyzer(ctx.metrics, policy.analysis)
        verdict, state = analyzer.judge(r.model, r.id, r.phase.value, now, status.get("analysis", {}))
        status["analysis"] = state
        status["verdict"] = {"decision": verdict.decision.value, "reason": verdict.reason,
                             "evidence": verdict.evidence, "at": now.isoformat()}
        return Observations(now, verdict=verdict), status, events
    return Observations(now), status, events


def _next(r: Release, d: Decision, status: dict, obs: Observations) -> Release:
    moved = (d.phase, d.step_index) != (r.phase, r.step_index)
    return r.evolve(phase=d.phase, step_index=d.step_index, reason=d.reason, paused_from=d.paused_from,
                    requested_action=None if d.clear_action else r.requested_action, status=status,
                    phase_started_at=obs.now if moved else r.phase_started_at)


def _start_window(ctx: Controller, r: Release, policy: Policy) -> dict:
    share = policy.canary.steps[r.step_index] / 100.0 if r.phase == Phase.CANARY else 0.0
    analyzer = Analyzer(ctx.metrics, policy.analysis)
    return analyzer.start_window(r.model, r.id, share, ctx.clock(), r.status.get("analysis", {}))


def _transition_data(new: Release, obs: Observations) -> dict:
    data = {"step": new.step_index}
    if obs.verdict is not None:
        data["verdict"] = {"decision": obs.verdict.decision.value, "evidence": obs.verdict.evidence}
    return data


def _apply_entry_effects(ctx: Controller, r: Release, policy: Policy) -> None:
    """What entering a phase does in the world. Safe to repeat."""
    ensure_routed(ctx, r, policy)       # weights move at once: a rollback sends 0 % to the candidate
    cand = candidate_version(r)
    if r.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK, Phase.FAILED, Phase.ABORTED):
        if r.stable_version:
            route_stable_only(ctx, r.model, r.stable_version, r.id)
        if cand != r.stable_version:
            ctx.pool.stop(r.model, cand)
        _registry_safe(ctx.registry.delete_alias, r.model, rc.ALIAS_CHALLENGER)
    if r.phase == Phase.PROMOTING:
        ctx.registry.set_alias(r.model, rc.ALIAS_CHAMPION, cand)
        _registry_safe(ctx.registry.delete_alias, r.model, rc.ALIAS_CHALLENGER)
    if r.phase == Phase.SUCCEEDED:
        route_stable_only(ctx, r.model, cand, r.id)
        if r.stable_version and r.stable_version != cand:
            ctx.pool.stop(r.model, r.stable_version)
    tags = rc.status_tags(r.phase.value, r.id)
    if r.phase in TERMINAL:
        tags[rc.TAG_OUTCOME] = r.phase.value
    _registry_safe(ctx.registry.set_tags, r.model, r.candidate_version, tags)


def _registry_safe(fn, *args) -> None:
    """Status tags and alias clean-up are best effort: the store stays the source of truth."""
    try:
        fn(*args)
    except Exception as exc:
        log.warning("registry.write_failed", extra={"call": fn.__name__, "error": str(exc)})
