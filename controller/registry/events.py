"""Turning MLflow's view of a model into RegistryEvents: webhook payloads and polls."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from controller.registry.conventions import (
    ACTIONS, ALIAS_CANDIDATE, TAG_ACTION, is_derived_build)
from controller.registry.types import EventKind, RegistryEvent, VersionInfo


class PayloadError(ValueError):
    """A webhook body is not a model-registry payload relctl understands."""


# (entity, action) -> (kind, data fields that must be present)
_WEBHOOK_EVENTS: dict[tuple[str, str], tuple[EventKind, tuple[str, ...]]] = {
    ("model_version", "created"): (EventKind.VERSION_CREATED, ("name", "version")),
    ("model_version_alias", "created"): (EventKind.ALIAS_SET, ("name", "version", "alias")),
    ("model_version_alias", "deleted"): (EventKind.ALIAS_DELETED, ("name", "alias")),
    ("model_version_tag", "set"): (EventKind.TAG_SET, ("name", "version", "key", "value")),
    ("model_version_tag", "deleted"): (EventKind.TAG_DELETED, ("name", "version", "key")),
}


def parse_webhook_payload(payload: Any) -> RegistryEvent | None:
    """The event in an MLflow webhook body, or None for what relctl ignores
    (registered_model.created, prompts, budgets, creation of a derived build)."""
    if not isinstance(payload, Mapping):
        raise PayloadError("payload must be a JSON object")
    entity, action, data = payload.get("entity"), payload.get("action"), payload.get("data")
    if not isinstance(entity, str) or not isinstance(action, str):
        raise PayloadError("payload needs string fields 'entity' and 'action'")
    if not isinstance(data, Mapping):
        raise PayloadError("payload needs an object field 'data'")
    known = _WEBHOOK_EVENTS.get((entity, action))
    if known is None:
        return None
    kind, fields = known
    if kind is EventKind.VERSION_CREATED and is_derived_build(data.get("tags") or {}):
        return None
    missing = [f for f in fields if not isinstance(data.get(f), (str, int)) or data.get(f) == ""]
    if missing:
        raise PayloadError(f"{entity}.{action} payload lacks {', '.join(missing)}")
    return RegistryEvent(kind=kind, name=str(data["name"]), version=_text(data, "version"),
                         alias=_text(data, "alias"), tag_key=_text(data, "key"),
                         tag_value=_text(data, "value"))


def _text(data: Mapping[str, Any], key: str) -> str | None:
    return None if data.get(key) is None else str(data[key])


def poll_events(name: str, versions: Iterable[VersionInfo],
                seen: set[str]) -> list[RegistryEvent]:
    """Events implied by the registry's current state.

    New versions are edge-triggered (reported once, via `seen`); alias `candidate`
    and tag `relctl.action` are level-triggered: reported on every poll while set, so
    a crash between noticing and acting loses nothing. The controller consumes them
    (moves `candidate` to `challenger`, deletes `relctl.action`) once handled.
    Derived builds (relctl's own AWQ versions) are never reported as new versions.
    """
    events = []
    for info in sorted(versions, key=lambda v: _version_key(v.version)):
        if info.version not in seen and not is_derived_build(info.tags):
            events.append(RegistryEvent(EventKind.VERSION_CREATED, name, info.version))
        if ALIAS_CANDIDATE in info.aliases:
            events.append(RegistryEvent(EventKind.ALIAS_SET, name, info.version,
                                        alias=ALIAS_CANDIDATE))
        action = info.tags.get(TAG_ACTION)
        if action in ACTIONS:
            events.append(RegistryEvent(EventKind.TAG_SET, name, info.version,
                                        tag_key=TAG_ACTION, tag_value=action))
    return events


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 62, version)
