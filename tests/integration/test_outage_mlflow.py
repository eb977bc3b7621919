"""MLflow unreachable while a release promotes: the tick gives up fast, the release holds in
`promoting` with the alias untouched, and it finishes once the same server is back.

Real: the MLflow server (stopped and started again on the same port and backend store), the
registry client, the store, the workers and the loop. In-memory: pool, router and traffic.
"""
from __future__ import annotations

import time

import pytest

from controller.domain.phases import Phase
from controller.domain.release import UserAction
from controller.reconcile.workers import ReleaseWorkers
from controller.registry.mlflow_registry import MlflowRegistry
from controller.service import create_release
from tests.conftest import make_controller
from tests.support.mlflow_server import mlflow_server, placeholder_checkpoint  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
MODEL = "outage-mlflow"
POLICY = {"name": "outage", "quantize": {"enabled": False}, "shadow": {"duration_seconds": 0},
          "canary": {"steps": [20], "step_seconds": 600}}
FAILING_TICK_BOUND_S = 20     # MLflow's client retries once (client_errors.FAST_FAIL_ENV), then gives up


def _tick(ctx, workers: ReleaseWorkers) -> float:
    """One tick of every release, the way the scheduler runs it (a failing tick is logged, not raised)."""
    started = time.monotonic()
    ctx.clock.advance(2)
    workers.tick()
    workers.drain(60)
    ctx.jobs.join(60)
    return time.monotonic() - started


def test_mlflow_down_while_promoting_holds_then_finishes(mlflow_server, tmp_path):  # noqa: F811
    registry = MlflowRegistry(mlflow_server.url)
    old = registry.register_checkpoint(MODEL, placeholder_checkpoint(tmp_path, "v1"))
    registry.set_alias(MODEL, "champion", old)
    new = registry.register_checkpoint(MODEL, placeholder_checkpoint(tmp_path, "v2"))
    (tmp_path / "ctl").mkdir()
    ctx = make_controller(tmp_path / "ctl", registry=registry)
    ctx.champions.record(MODEL, old, ctx.clock())
    workers = ReleaseWorkers(ctx, max_workers=1)
    release = create_release(ctx, MODEL, new, POLICY)
    try:
        for _ in range(30):                                   # deploy (download job), then the canary
            _tick(ctx, workers)
            if ctx.store.get(release.id).phase == Phase.CANARY:
                break
        assert ctx.store.get(release.id).phase == Phase.CANARY, ctx.store.get(release.id).reason
        assert registry.get_alias(MODEL, "challenger") == new
        ctx.store.request_action(release.id, UserAction.PROMOTE, ctx.clock())

        mlflow_server.stop()
        seconds = [_tick(ctx, workers) for _ in range(3)]
        assert max(seconds) < FAILING_TICK_BOUND_S, seconds      # bounded retries: no tick hangs
        held = ctx.store.get(release.id)
        assert held.phase == Phase.PROMOTING and release.id in ctx.store.to_reconcile()
        assert ctx.champions.get(MODEL).version == old           # the champion move was not recorded

        mlflow_server.start()                                    # same port, same backend store
        assert mlflow_server.url == registry.uri
        assert registry.get_alias(MODEL, "champion") == old      # nothing half-moved while it was down
        for _ in range(5):
            _tick(ctx, workers)
            if ctx.store.get(release.id).phase == Phase.SUCCEEDED and ctx.store.get(release.id).settled:
                break
    finally:
        workers.shutdown()
        mlflow_server.start()                                    # the session's server, for later tests

    done = ctx.store.get(release.id)
    assert done.phase == Phase.SUCCEEDED and done.settled, done.reason
    assert registry.get_alias(MODEL, "champion") == new
    assert registry.get_alias(MODEL, "challenger") is None
    assert ctx.champions.get(MODEL).version == new
    transitions = [e["to_phase"] for e in ctx.store.events(release.id) if e["kind"] == "transition"]
    assert transitions.count("promoting") == 1 and transitions.count("succeeded") == 1
    outage = [e for e in ctx.store.events(release.id) if e["kind"] == "registry_error"]
    assert len(outage) == 1, outage                             # said once for the hold, not once per tick
    assert outage[0]["reason"].startswith("holding in promoting") and mlflow_server.url in outage[0]["reason"]
