"""Make the world match a release's *stored* phase: the effects the phase table names.

Called after every save (and on every tick), so each effect is idempotent and cheap when
already true; a crash between save and effects is mended by the next tick, and a decision
that lost its save race has no effect at all.
"""
from __future__ import annotations

import logging
from typing import Callable

from controller.domain.phase_table import PHASES, TERMINAL, Effect
from controller.domain.release import Release
from controller.reconcile.context import Controller
from controller.reconcile.deploy_stage import candidate_version
from controller.reconcile.evaluation_servers import evaluation_labels
from controller.reconcile.traffic_stage import ensure_routed
from controller.registry import conventions as rc
from policies.schema import Policy

log = logging.getLogger(__name__)


def apply_effects(ctx: Controller, r: Release, policy: Policy) -> bool:
    """Apply every effect of the phase; True when the world matches it (an effect that must wait,
    e.g. for the stable's server to come back, makes it False and is retried on the next tick)."""
    held = [_EFFECTS[effect](ctx, r, policy) is not False for effect in PHASES[r.phase].effects]
    _status_tags(ctx, r)
    return all(held)


def _route(ctx: Controller, r: Release, policy: Policy) -> bool:
    return ensure_routed(ctx, r, policy)


def _cancel_jobs(ctx: Controller, r: Release, policy: Policy) -> None:
    for job in ctx.jobs.cancel(r.id):
        log.info("job.cancelled", extra={"release": r.id, "job": job, "phase": r.phase.value})


def _stop_candidate(ctx: Controller, r: Release, policy: Policy) -> None:
    """Every server the release started: the candidate's, the build's, the evaluation pair."""
    versions = {candidate_version(r), r.status.get("build", {}).get("version"), *evaluation_labels(r.id).values()}
    for version in versions - {None, r.stable_version}:
        ctx.pool.stop(r.model, version)


def _stop_stable(ctx: Controller, r: Release, policy: Policy) -> None:
    if r.stable_version and r.stable_version != candidate_version(r):
        ctx.pool.stop(r.model, r.stable_version)


def _set_champion(ctx: Controller, r: Release, policy: Policy) -> None:
    version = candidate_version(r)
    if ctx.registry.get_alias(r.model, rc.ALIAS_CHAMPION) != version:
        ctx.registry.set_alias(r.model, rc.ALIAS_CHAMPION, version)
    ctx.champions.record(r.model, version, ctx.clock())


def _clear_challenger(ctx: Controller, r: Release, policy: Policy) -> None:
    _best_effort(ctx.registry.delete_alias, r.model, rc.ALIAS_CHALLENGER)


_EFFECTS: dict[Effect, Callable[[Controller, Release, Policy], bool | None]] = {
    Effect.ROUTE: _route,
    Effect.CANCEL_JOBS: _cancel_jobs,
    Effect.STOP_CANDIDATE: _stop_candidate,
    Effect.STOP_STABLE: _stop_stable,
    Effect.SET_CHAMPION: _set_champion,
    Effect.CLEAR_CHALLENGER: _clear_challenger,
}

_tags_written: dict[tuple[str, str], dict[str, str]] = {}   # (release, version) -> last tags (this process)


def _status_tags(ctx: Controller, r: Release) -> None:
    """Phase and outcome as tags on the candidate version, written once per change."""
    tags = rc.status_tags(r.phase.value, r.id)
    if r.phase in TERMINAL:
        tags[rc.TAG_OUTCOME] = r.phase.value
    key = (r.id, r.candidate_version)
    if _tags_written.get(key) == tags or not _best_effort(ctx.registry.set_tags, r.model, r.candidate_version, tags):
        return
    if r.phase in TERMINAL:
        _tags_written.pop(key, None)   # the release settles now and is not looked at again
    else:
        _tags_written[key] = tags


def _best_effort(fn, *args) -> bool:
    """Status tags and alias clean-up are best effort: the store stays the source of truth."""
    try:
        fn(*args)
        return True
    except Exception as exc:
        log.warning("registry.write_failed", extra={"call": fn.__name__, "error": str(exc)})
        return False
