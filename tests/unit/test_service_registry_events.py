"""How registry events start, queue and steer releases, and how a human move of `champion` is
handled (in-memory registry double, real SQLite store)."""
import pytest

from controller.domain.phases import Phase
from controller.registry.types import EventKind, RegistryEvent
from controller.service import handle_registry_event, keep_champion_serving, reconcile_champion, release_queued
from controller.store.releases import Conflict


@pytest.fixture
def ctx(ctx):
    ctx.registry.add_version("chat", {"relctl.parent_version": "2"})   # version 3: a relctl build
    ctx.registry.add_version("chat")                                  # version 4
    ctx.registry.add_version("chat")                                  # version 5
    return ctx


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
    ctx.registry.aliases[("chat", "candidate")] = "2"
    release = handle_registry_event(ctx, ev(EventKind.ALIAS_SET, "2", alias="candidate"))
    assert release is not None
    assert ("chat", "candidate") not in ctx.registry.aliases


def test_action_tag_requests_action_and_is_consumed(ctx):
    release = handle_registry_event(ctx, ev(EventKind.VERSION_CREATED, "2"))
    ctx.registry.versions["chat"]["2"]["relctl.action"] = "abort"
    steered = handle_registry_event(ctx, ev(EventKind.TAG_SET, "2", tag_key="relctl.action", tag_value="abort"))
    assert steered.id == release.id and steered.requested_action == "abort"
    assert "relctl.action" not in ctx.registry.versions["chat"]["2"]


def test_action_tag_on_the_build_challenger_points_at(ctx):
    release = handle_registry_event(ctx, ev(EventKind.VERSION_CREATED, "2"))
    ctx.store.save(release, release.evolve(status={"build": {"version": "3"}, "deployment": {"version": "3"}}),
                   [], ctx.clock())
    steered = handle_registry_event(ctx, ev(EventKind.TAG_SET, "3", tag_key="relctl.action", tag_value="abort"))
    assert steered is not None and steered.requested_action == "abort"


def test_action_tag_on_an_unrelated_version_is_ignored(ctx):
    handle_registry_event(ctx, ev(EventKind.VERSION_CREATED, "2"))
    assert handle_registry_event(ctx, ev(EventKind.TAG_SET, "4", tag_key="relctl.action", tag_value="abort")) is None


def test_champion_is_not_released_again(ctx):
    assert handle_registry_event(ctx, ev(EventKind.ALIAS_SET, "1", alias="candidate")) is None
    assert ctx.store.list() == []


def test_version_arriving_during_a_release_is_queued_then_released(ctx):
    first = handle_registry_event(ctx, ev(EventKind.VERSION_CREATED, "2"))
    assert handle_registry_event(ctx, ev(EventKind.VERSION_CREATED, "4")) is None
    assert [q.version for q in ctx.queue.queued("chat")] == ["4"]
    assert any(e["kind"] == "queued" for e in ctx.store.events(first.id))
    assert release_queued(ctx, "chat") is None                 # the first is still active
    ctx.store.save(first, first.evolve(phase=Phase.ROLLED_BACK), [], ctx.clock())
    second = release_queued(ctx, "chat")
    assert second is not None and second.candidate_version == "4"
    assert ctx.queue.queued("chat") == []


def test_older_queued_versions_are_superseded_by_the_newest(ctx):
    first = handle_registry_event(ctx, ev(EventKind.VERSION_CREATED, "2"))
    handle_registry_event(ctx, ev(EventKind.VERSION_CREATED, "4"))
    handle_registry_event(ctx, ev(EventKind.VERSION_CREATED, "5"))
    ctx.store.save(first, first.evolve(phase=Phase.FAILED), [], ctx.clock())
    second = release_queued(ctx, "chat")
    assert second.candidate_version == "5"
    superseded = [e for e in ctx.store.events(second.id) if e["kind"] == "superseded"]
    assert superseded and superseded[0]["data"]["versions"] == ["4"]


def test_the_database_allows_one_active_release_per_model(ctx):
    ctx.store.create("chat", "2", "1", {}, ctx.clock())
    with pytest.raises(Conflict):
        ctx.store.create("chat", "4", "1", {}, ctx.clock())


def test_champion_moved_by_hand_to_a_new_version_is_a_release_request(ctx):
    assert reconcile_champion(ctx, "chat") is None            # first look: baseline champion 1
    ctx.registry.aliases[("chat", "champion")] = "4"           # a human in the MLflow UI
    release = reconcile_champion(ctx, "chat")
    assert release is not None and release.candidate_version == "4"
    assert ctx.registry.aliases[("chat", "champion")] == "1"   # restored until the release promotes


def test_champion_moved_back_to_an_earlier_champion_is_an_instant_rollback(ctx):
    ctx.champions.record("chat", "1", ctx.clock())
    ctx.champions.record("chat", "2", ctx.clock())             # relctl promoted 2 earlier
    ctx.registry.aliases[("chat", "champion")] = "2"
    done = ctx.store.create("chat", "2", "1", {}, ctx.clock())
    ctx.store.save(done, done.evolve(phase=Phase.SUCCEEDED), [], ctx.clock())
    ctx.store.mark_settled(done.id)
    ctx.registry.aliases[("chat", "champion")] = "1"           # a human rolls back in the UI
    assert reconcile_champion(ctx, "chat") is None
    assert ctx.champions.get("chat").version == "1"
    assert any(e["kind"] == "manual_rollback" for e in ctx.store.events(done.id))
    keep_champion_serving(ctx, "chat")                        # the keeper downloads, starts, then routes
    ctx.jobs.join(30)
    keep_champion_serving(ctx, "chat")
    keep_champion_serving(ctx, "chat")
    route = ctx.router.current("chat")
    assert route is not None and route.backends[0].version == "1" and route.weights == {"stable": 100.0}
