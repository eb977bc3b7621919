"""Registry polling on fakes: the first look is history, a new version starts a release, a busy
model queues it, the champion is kept serving, and a registry outage stops nothing else."""
import pytest

from controller.config import Settings, WatchedModel
from controller.domain.phases import Phase
from controller.runtime import Seen, poll_registry
from tests.conftest import make_controller
from tests.fakes import FakeRegistry


@pytest.fixture
def ctx(tmp_path):
    return make_controller(tmp_path, registry=FakeRegistry(tmp_path, versions=1, champion="1"))


def settings(tmp_path, *models):
    return Settings(workdir=tmp_path, models=[WatchedModel(name=m, policy="demo") for m in models])


def test_first_poll_is_history_then_new_versions_start_releases(ctx, tmp_path):
    seen, s = Seen(ctx.store._sessions), settings(tmp_path, "chat")
    poll_registry(ctx, s, seen)
    assert ctx.store.list() == []                             # version 1, the champion, is history
    assert ctx.champions.get("chat").version == "1"
    v2 = ctx.registry.add_version("chat")
    poll_registry(ctx, s, seen)
    (release,) = ctx.store.list()
    assert release.candidate_version == v2 and release.stable_version == "1"
    v4 = ctx.registry.add_version("chat")
    poll_registry(ctx, s, seen)
    assert [q.version for q in ctx.queue.queued("chat")] == [v4]
    ctx.store.save(release, release.evolve(phase=Phase.ROLLED_BACK), [], ctx.clock())
    poll_registry(ctx, s, seen)
    assert {r.candidate_version for r in ctx.store.list("chat", active_only=True)} == {v4}


def test_the_champion_is_kept_serving_outside_a_release(ctx, tmp_path):
    seen, s = Seen(ctx.store._sessions), settings(tmp_path, "chat")
    for _ in range(3):                                        # download job, then start, then route
        poll_registry(ctx, s, seen)
        ctx.jobs.join(30)
    assert ctx.router.current("chat").backends[0].version == "1"


def test_one_model_failing_to_poll_does_not_stop_the_others(ctx, tmp_path):
    seen, s = Seen(ctx.store._sessions), settings(tmp_path, "missing", "chat")
    poll_registry(ctx, s, seen)                                # "missing" raises inside: logged, skipped
    v2 = ctx.registry.add_version("chat")
    poll_registry(ctx, s, seen)
    assert [r.candidate_version for r in ctx.store.list("chat")] == [v2]
