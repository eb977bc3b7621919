"""Two models released at once by the real reconcile loop, driven from MLflow's own UI endpoints.

Real: the MLflow server and registry (versions, aliases, tags, downloads with their manifests),
the store, polling, the per-release workers, the loop and the judge. In-memory: the pool, the
router and the traffic counts (tests/fakes) — two models' vLLM servers on a 2-core machine starve
each other's starts, so real servers are left to the demo and the crash test.

- model b: a new version, released and promoted (the registry's `champion` moves);
- model c: alias `candidate` set through `/ajax-api` (as the UI does) on a version older than the
  champion starts its release; its candidate fails, so the judge rolls it back while b's release
  runs; a version registered meanwhile is queued, released afterwards, and tag
  `relctl.action=abort` set through `/ajax-api` on the version `challenger` points at aborts it.
"""
import time

import pytest
import yaml

from controller.analysis.types import Measurement, ShadowCounts, TrackCounts
from controller.config import Settings, WatchedModel
from controller.domain.phase_table import TERMINAL
from controller.reconcile.workers import ReleaseWorkers
from controller.registry.mlflow_registry import MlflowRegistry
from controller.runtime import Seen, poll_registry
from policies.loader import load_policy
from tests.conftest import make_controller
from tests.support.mlflow_server import mlflow_server, mlflow_ui, placeholder_checkpoint  # noqa: F401

pytestmark = pytest.mark.integration
B, C = "conc-b", "conc-c"


class Traffic:
    """Per-model cumulative counts, split by the router's real weights; a model's candidate may fail."""

    def __init__(self, router):
        self.router, self.counts, self.failing = router, {}, set()

    def serve(self, model: str, n: int) -> None:
        route = self.router.current(model)
        share = route.weights.get("candidate", 0.0) / 100 if route else 0.0
        mirrored = route is not None and route.mirror_to == "candidate"
        stable, cand, shadow = self.counts.get(model, (TrackCounts(), TrackCounts(), ShadowCounts()))
        to_c = round(n * share)
        bad = model in self.failing
        stable = TrackCounts(stable.requests + n - to_c, stable.errors)
        cand = TrackCounts(cand.requests + to_c, cand.errors + (to_c // 2 if bad else 0))
        if mirrored:
            shadow = ShadowCounts(shadow.pairs + n, shadow.only_candidate_failed + (n // 2 if bad else 0),
                                  shadow.only_stable_failed)
        self.counts[model] = (stable, cand, shadow)

    def read(self, model, release_id, thresholds):
        stable, cand, shadow = self.counts.get(model, (TrackCounts(), TrackCounts(), ShadowCounts()))
        return Measurement(stable, cand, shadow)

    def stable_latency(self, model, release_id, kind):
        raise AssertionError("latency is not judged in this test")


def test_two_models_at_once_from_the_mlflow_ui(mlflow_server, tmp_path):  # noqa: F811
    registry = MlflowRegistry(mlflow_server.url)
    policy = load_policy("demo").model_dump(mode="json")
    policy.update(quantize={**policy["quantize"], "enabled": False})
    (tmp_path / "fast.yaml").write_text(yaml.safe_dump(policy))
    registry.set_alias(B, "champion", registry.register_checkpoint(B, placeholder_checkpoint(tmp_path, "b1")))
    c_picked = registry.register_checkpoint(C, placeholder_checkpoint(tmp_path, "c-picked"))
    registry.set_alias(C, "champion", registry.register_checkpoint(C, placeholder_checkpoint(tmp_path, "c1")))

    (tmp_path / "ctl").mkdir()
    ctx = make_controller(tmp_path / "ctl", registry=registry)
    traffic = Traffic(ctx.router)
    ctx.metrics = traffic
    settings = Settings(workdir=tmp_path / "ctl",
                        models=[WatchedModel(name=m, policy=str(tmp_path / "fast.yaml")) for m in (B, C)])
    seen, workers = Seen(ctx.store._sessions), ReleaseWorkers(ctx, max_workers=4)

    def run(seconds: float, until) -> None:
        """Poll, tick every release, serve 40 requests per model per simulated 2 s, until `until()`."""
        for _ in range(int(seconds / 2)):
            ctx.clock.advance(2)
            poll_registry(ctx, settings, seen)
            workers.tick()
            workers.drain(30)
            ctx.jobs.join(30)
            for model in (B, C):
                traffic.serve(model, 40)
            if until():
                return
            time.sleep(0.05)
        raise AssertionError(f"not reached in {seconds:.0f} simulated seconds")

    def release(model, version):
        return next((r for r in ctx.store.list(model) if r.candidate_version == version), None)

    try:
        run(10, lambda: True)                                            # first look: history only
        assert ctx.store.list() == []
        b2 = registry.register_checkpoint(B, placeholder_checkpoint(tmp_path, "b2"))
        mlflow_ui(mlflow_server.url, "registered-models/alias", {"name": C, "alias": "candidate", "version": c_picked})
        traffic.failing.add(C)
        run(40, lambda: release(B, b2) and release(C, c_picked))
        rel_c = release(C, c_picked)
        created = next(e for e in ctx.store.events(rel_c.id) if e["kind"] == "created")
        assert "alias_set" in created["reason"]                          # the alias alone started it
        c3 = registry.register_checkpoint(C, placeholder_checkpoint(tmp_path, "c3"))  # arrives while c is busy
        run(400, lambda: release(C, c_picked).phase.value in TERMINAL)
        assert release(C, c_picked).phase.value == "rolled_back", release(C, c_picked).reason
        assert release(B, b2).phase.value not in ("failed", "aborted", "rolled_back")   # b went on beside it
        assert any(e["kind"] == "queued" and e["data"]["version"] == c3 for e in ctx.store.events(rel_c.id))

        traffic.failing.discard(C)
        run(60, lambda: registry.get_alias(C, "challenger") == c3)
        mlflow_ui(mlflow_server.url, "model-versions/set-tag", {"name": C, "version": c3, "key": "relctl.action",
                                                         "value": "abort"})
        run(60, lambda: release(C, c3).phase.value in TERMINAL)
        assert release(C, c3).phase.value == "aborted", release(C, c3).reason
        run(600, lambda: release(B, b2).phase.value in TERMINAL)
        assert release(B, b2).phase.value == "succeeded", release(B, b2).reason
    finally:
        workers.shutdown()
    assert registry.get_alias(B, "champion") == b2
    assert registry.get_alias(C, "champion") != c3 and registry.get_alias(C, "challenger") is None
