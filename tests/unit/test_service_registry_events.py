"""How registry events start and steer releases (registry double, real SQLite store)."""
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

from controller.reconcile.context import Controller
from controller.registry.types import EventKind, RegistryEvent, VersionInfo
from controller.service import handle_registry_event
from controller.store.db import make_engine, migrate
from controller.store.releases import ReleaseStore


class Registry:
    def __init__(self):
        self.tags = {"1": {}, "2": {}, "3": {"relctl.parent_version": "2"}}
        self.aliases = {"champion": "1"}
        self.deleted = []

    def get_version(self, name, version):
        return VersionInfo(name, version, "models:/x", tags=self.tags[version])

    def get_alias(self, name, alias):
        return self.aliases.get(alias)

    def delete_alias(self, name, alias):
        self.deleted.append(("alias", alias))

    def delete_tag(self, name, version, key):
        self.deleted.append(("tag", key))


@pytest.fixture
def ctx(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 's.db'}")
    migrate(engine)
    return Controller(store=ReleaseStore(sessionmaker(engine, expire_on_commit=False)), registry=Registry(),
                      pool=None, router=None, metrics=None, workdir=Path(tmp_path))


def ev(kind, version, **kw):
    return RegistryEvent(kind, "chat", version, **kw)


def test_new_version_starts_one_release_only(ctx):
    first = handle_registry_event(ctx, ev(EventKind.VERSION_CREATED, "2"))
    assert first is not None and first.candidate_version == "2" and first.stable_version == "1"
    assert handle_registry_event(ctx, ev(EventKind.VERSION_CREATED, "2")) is None   # webhook + poll
    assert len(ctx.store.list()) == 1


def test_quantized_builds_never_start_a_release(ctx):
    assert handle_registry_event(ctx, ev(EventKind.VERSION_CREATED, "3")) is None
    assert ctx.store.list() == []


def test_candidate_alias_is_consumed(ctx):
    release = handle_registry_event(ctx, ev(EventKind.ALIAS_SET, "2", alias="candidate"))
    assert release is not None
    assert ("alias", "candidate") in ctx.registry.deleted


def test_action_tag_requests_action_and_is_consumed(ctx):
    release = handle_registry_event(ctx, ev(EventKind.VERSION_CREATED, "2"))
    steered = handle_registry_event(ctx, ev(EventKind.TAG_SET, "2", tag_key="relctl.action", tag_value="abort"))
    assert steered.id == release.id and steered.requested_action == "abort"
    assert ("tag", "relctl.action") in ctx.registry.deleted


def test_champion_is_not_released_again(ctx):
    assert handle_registry_event(ctx, ev(EventKind.ALIAS_SET, "1", alias="candidate")) is None
    assert ctx.store.list() == []
