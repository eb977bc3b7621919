"""The one entry path: API routes, CLI, webhooks and the scheduler all call these functions."""
from __future__ import annotations

import logging
from pathlib import Path

from controller.domain.phase_table import owns_routes
from controller.domain.phases import Phase
from controller.domain.release import Release, UserAction
from controller.reconcile.context import Controller
from controller.reconcile.deploy_stage import candidate_version, ensure_serving
from controller.reconcile.traffic_stage import route_stable_only
from controller.registry import conventions as rc
from controller.registry.types import EventKind, RegistryError, RegistryEvent
from controller.registry.versions import VersionError, canonical_version
from controller.store.releases import Conflict
from policies.loader import PolicyError, load_policy, policy_from_request, watch_policy_ref
from policies.schema import Policy

log = logging.getLogger(__name__)


class BadRequest(ValueError):
    """The caller asked for something that cannot be: unknown model or version, bad policy."""


def resolve_policy(policy: str | dict | Path | None) -> Policy:
    """A name or an inline mapping (any caller); a Path only from the operator's own settings.
    A string is never read as a file: API callers must not probe the server's disk."""
    try:
        return load_policy(policy) if isinstance(policy, Path) else policy_from_request(policy)
    except PolicyError as exc:
        raise BadRequest(str(exc)) from None


def create_release(ctx: Controller, model: str, version: str, policy: str | dict | Path | None = None,
                   reason: str = "") -> Release:
    """Start a release of `version`; the current champion is the stable side."""
    try:
        version = canonical_version(version)
    except VersionError as exc:
        raise BadRequest(str(exc)) from None
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


def handle_registry_event(ctx: Controller, ev: RegistryEvent, policy: str | Path | None = None) -> Release | None:
    """A new version or alias `candidate` starts (or queues) a release; tag relctl.action steers the
    active one; a human move of alias `champion` is a rollback or a release request."""
    if ev.kind == EventKind.TAG_SET and ev.tag_key == rc.TAG_ACTION and ev.tag_value in rc.ACTIONS:
        return _steer(ctx, ev)
    if ev.kind == EventKind.ALIAS_SET and ev.alias == rc.ALIAS_CHAMPION:
        return reconcile_champion(ctx, ev.name, policy)
    starts = (ev.kind == EventKind.VERSION_CREATED
              or (ev.kind == EventKind.ALIAS_SET and ev.alias == rc.ALIAS_CANDIDATE))
    if not starts or ev.version is None or _is_relctl_build(ctx, ev.name, ev.version):
        return None
    if any(r.candidate_version == ev.version for r in ctx.store.list(ev.name)):
        return None  # already released once (webhook and poll both report it)
    release = _start_or_queue(ctx, ev.name, ev.version, policy, f"registry: {ev.kind.value} {ev.version}")
    if ev.kind == EventKind.ALIAS_SET:
        ctx.registry.delete_alias(ev.name, rc.ALIAS_CANDIDATE)  # consumed; `challenger` marks it from now on
    return release


def _steer(ctx: Controller, ev: RegistryEvent) -> Release | None:
    """relctl.action on the candidate, or on the build `challenger` points at."""
    # The tag is a one-shot command: consume it so the next poll does not repeat it.
    ctx.registry.delete_tag(ev.name, ev.version, rc.TAG_ACTION)
    active = active_release(ctx, ev.name)
    if active is None or ev.version not in release_versions(active):
        log.info("action.ignored", extra={"model": ev.name, "version": ev.version, "action": ev.tag_value})
        return None
    try:
        return request_action(ctx, active.id, ev.tag_value or "")
    except Conflict as exc:
        log.warning("action.not_applied", extra={"release": active.id, "error": str(exc)})
        return None


def _start_or_queue(ctx: Controller, model: str, version: str, policy: str | Path | None,
                    reason: str) -> Release | None:
    """Start a release of `version`, or queue it behind the model's active release (never lose it)."""
    active = active_release(ctx, model)
    if active is None:
        try:
            return create_release(ctx, model, version, policy, reason=reason)
        except BadRequest as exc:
            log.warning("release.not_started", extra={"model": model, "version": version, "error": str(exc)})
            return None
        except Conflict:
            active = active_release(ctx, model)   # created by another writer just now
    queued_policy = None if policy is None else str(policy)   # the operator's watch setting, never API input
    if ctx.queue.add(model, version, queued_policy, reason, ctx.clock()) and active is not None:
        ctx.store.append_event(active.id, "queued", f"version {version} queued until this release ends",
                               {"version": version}, ctx.clock(), dedup_key=f"queued-{version}")
    return None


def release_queued(ctx: Controller, model: str) -> Release | None:
    """Once a model has no active release, release its newest queued version; older ones are superseded."""
    queued = ctx.queue.queued(model)
    if not queued or active_release(ctx, model) is not None:
        return None
    newest, older = queued[0], queued[1:]
    try:
        policy = watch_policy_ref(newest.policy) if newest.policy else None
        release = create_release(ctx, model, newest.version, policy, reason=f"{newest.reason} (was queued)")
    except BadRequest as exc:
        ctx.queue.mark(model, newest.version, "rejected")
        log.warning("release.not_started", extra={"model": model, "version": newest.version, "error": str(exc)})
        return None
    except Conflict:
        return None
    ctx.queue.mark(model, newest.version, "started", release.id)
    for q in older:
        ctx.queue.mark(model, q.version, "superseded", release.id)
    if older:
        skipped = [q.version for q in older]
        ctx.store.append_event(release.id, "superseded", f"queued versions {', '.join(skipped)} superseded by "
                               f"version {newest.version}", {"versions": skipped}, ctx.clock())
    return release


def reconcile_champion(ctx: Controller, model: str, policy: str | Path | None = None) -> Release | None:
    """Notice a human moving alias `champion` (MLflow UI): back to an earlier champion it is an instant
    rollback; to any other version it is a request to release that version, and the alias is restored
    until that release promotes."""
    alias = ctx.registry.get_alias(model, rc.ALIAS_CHAMPION)
    known = ctx.champions.get(model)
    if alias is None or (known is not None and alias == known.version):
        return None
    if known is None:  # first look: what is champion now is the baseline
        ctx.champions.record(model, alias, ctx.clock())
        return None
    if any(r.phase == Phase.PROMOTING or (r.phase == Phase.SUCCEEDED and not r.settled)
           for r in ctx.store.list(model)[:3]):
        return None  # relctl itself is moving the alias
    latest = next(iter(ctx.store.list(model)), None)
    if alias in known.history:
        return _manual_rollback(ctx, model, alias, known.version, latest)
    ctx.registry.set_alias(model, rc.ALIAS_CHAMPION, known.version)
    if latest is not None:
        ctx.store.append_event(latest.id, "champion_moved", f"alias champion moved by hand to version {alias}; "
                               f"restored to {known.version} until version {alias} is released",
                               {"version": alias, "restored": known.version}, ctx.clock())
    return _start_or_queue(ctx, model, alias, policy, f"registry: alias champion moved to {alias}")


def _manual_rollback(ctx: Controller, model: str, to: str, was: str, latest: Release | None) -> None:
    active = active_release(ctx, model)
    if active is not None:
        request_action(ctx, active.id, UserAction.ABORT.value)
    ctx.champions.record(model, to, ctx.clock())
    log.warning("champion.manual_rollback", extra={"model": model, "from": was, "to": to})
    if latest is not None:
        ctx.store.append_event(latest.id, "manual_rollback",
                               f"alias champion moved by hand from version {was} back to {to}: instant rollback",
                               {"from": was, "to": to, "by": "registry alias champion"}, ctx.clock())
    return None


def active_release(ctx: Controller, model: str) -> Release | None:
    active = ctx.store.list(model, active_only=True)
    return active[0] if active else None


def release_versions(r: Release) -> set[str]:
    """Versions a user may steer the release by: the candidate, its build, what `challenger` points at."""
    return {r.candidate_version, candidate_version(r)} | ({r.status["build"]["version"]}
                                                          if r.status.get("build", {}).get("version") else set())


def _is_relctl_build(ctx: Controller, model: str, version: str) -> bool:
    tags = ctx.registry.get_version(model, version).tags
    return rc.TAG_PARENT_VERSION in tags or rc.TAG_QUANTIZATION in tags


def keep_champion_serving(ctx: Controller, model: str) -> None:
    """Outside a rollout, the champion is deployed and takes all traffic."""
    active = active_release(ctx, model)
    if active is not None and owns_routes(active):
        return
    champion = ctx.registry.get_alias(model, rc.ALIAS_CHAMPION)
    if champion is None:
        return
    served = ensure_serving(ctx, model, champion, owner=f"model:{model}")
    if served.state == "ready":
        route_stable_only(ctx, model, champion)
