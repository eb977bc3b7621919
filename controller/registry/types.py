"""Value types shared by the registry adapter, the poller and the webhook receiver."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class RegistryError(Exception):
    """A registry call failed; the message says which model, version or server."""


class EventKind(StrEnum):
    VERSION_CREATED = "version_created"
    ALIAS_SET = "alias_set"
    ALIAS_DELETED = "alias_deleted"
    TAG_SET = "tag_set"
    TAG_DELETED = "tag_deleted"


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: str
    source: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    created_at: datetime | None = None   # UTC


@dataclass(frozen=True)
class RegistryEvent:
    """Something that happened to a model version, from the poller or a webhook.

    `version` is None only for ALIAS_DELETED (MLflow does not say which version held it).
    """
    kind: EventKind
    name: str
    version: str | None
    alias: str | None = None
    tag_key: str | None = None
    tag_value: str | None = None
