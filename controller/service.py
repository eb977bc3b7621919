"""The one entry path: API routes, CLI, webhooks and the scheduler all call these functions."""
from __future__ import annotations

import logging

from controller.domain.phases import Phase
from controller.domain.release import Release, UserAction
from controller.reconcile.context import Controller
from controller.reconcile.deploy_stage import ensure_serving
from controller.reconcile.traffic_stage import route_stable_only
from controller.registry import conventions as rc
from controller.registry.types import EventKind, RegistryError, RegistryEvent
from controller.store.releases import Conflict
from policies.loader import PolicyError, load_policy, parse_policy
from policies.schema import Policy

log = logging.getLogger(__name__)

# Phases in which the release, not the champion keeper, owns the model's routes.
_RELEASE_ROUTES = {Phase.DEPLOYING, Phase.SHADOW, Phase.CANARY, Phase.PAUSED, Phase.PROMOTING,
                   Phase.ROLLING_BACK}


class BadRequest(ValueError):
    """The caller asked for something that cannot be: unknown model or version, bad policy."""


def resolve_policy(policy: str | dict | None) -> Policy:
    try:
        return parse_policy(policy, "request") if isinstance(policy, dict) else load_policy(policy)
    except PolicyError as exc:
        raise BadRequest(str(exc)) from None


def create_release(ctx: Controller, model: str, version: str, policy: str | dict | None = None,
                   reason: str = "") -> Release:
    """Start a release of `version`; the current champion is the stable side."""
    chosen = resolve_policy(policy)
    try:
        ctx.registry.get_version(model, str(version))
        stable = ctx.registry.get_alias(model, rc.ALIAS_CHAMPION)
    except RegistryError as exc:
        raise BadRequest(str(exc)) from None
    if stable == str(version):
        raise BadRequest(f"version {version} of {model!r} is already the champion")
    release = ctx.store.create(model, str(version), stable, chosen.model_dump(mode="json"), ctx.clock(),
                               reason=reason or f"release of {model} version {version} (policy {chosen.name})")
    log.info("release.created", extra={"release": release.id, "model": model, "version": version})
    return release


def request_action(ctx: Controller, release_id: str, action: str) -> Release:
    try:
        act = UserAction(action)
    except ValueError:
        raise BadRequest(f"unknown action {action!r}; use one of {', '.join(a.value for a in UserAction)}") from None
    return ctx.store.request_action(release_id, act, ctx.clock())


def handle_registry_event(ctx: Controller, ev: RegistryEvent, policy: str | None = None) -> Release | None:
    """A new version or alias `candidate` starts a release; tag relctl.action drives the active one."""
    if ev.kind == EventKind.TAG_SET and ev.tag_key == rc.TAG_ACTION and ev.tag_value in rc.ACTIONS:
        # The tag is a one-shot command: consume it so the next poll does not repeat it.
        ctx.registry.delete_tag(ev.name, ev.version, rc.TAG_ACTION)
        active = ctx.store.list(ev.name, active_only=True)
        if active and active[0].candidate_version == ev.version:
            try:
                return request_action(ctx, active[0].id, ev.tag_value)
            except Conflict as exc:
                log.warning("action.not_applied", extra={"release": active[0].id, "error": str(exc)})
        return None
    starts = (ev.kind == EventKind.VERSION_CREATED
              or (ev.kind == EventKind.ALIAS_SET and ev.alias == rc.ALIAS_CANDIDATE))
    if not starts or ev.version is None or _is_relctl_build(ctx, ev.name, ev.version):
        return None
    if any(r.candidate_version == ev.version for r in ctx.store.list(ev.name)):
        return None  # already released once (webhook and poll both report it)
    try:
        release = create_release(ctx, ev.name, ev.version, policy, reason=f"registry: {ev.kind.value} {ev.version}")
    except (BadRequest, Conflict) as exc:
        log.warning("release.not_started", extra={"model": ev.name, "version": ev.version, "error": str(exc)})
        return None
    if ev.kind == EventKind.ALIAS_SET:
        ctx.registry.delete_alias(ev.name, rc.ALIAS_CANDIDATE)  # consumed; `challenger` marks it from now on
    return release


def _is_relctl_build(ctx: Controller, model: str, version: str) -> bool:
    tags = ctx.registry.get_version(model, version).tags
    return rc.TAG_PARENT_VERSION in tags or rc.TAG_QUANTIZATION in tags


def keep_champion_serving(ctx: Controller, model: str) -> None:
    """Outside a rollout, the champion is deployed and takes all traffic."""
    active = ctx.store.list(model, active_only=True)
    if active and active[0].phase in _RELEASE_ROUTES:
        return
    champion = ctx.registry.get_alias(model, rc.ALIAS_CHAMPION)
    if champion is None:
        return
    served = ensure_serving(ctx, model, champion)
    if served.state == "ready":
        route_stable_only(ctx, model, champion)
