"""MLflow registry adapter: versions, aliases, tags, lineage, polling and webhooks."""
from controller.registry.types import EventKind, RegistryError, RegistryEvent, VersionInfo

__all__ = ["EventKind", "RegistryError", "RegistryEvent", "VersionInfo"]
