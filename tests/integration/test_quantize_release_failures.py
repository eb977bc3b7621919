"""A release whose candidate cannot be quantized ends `failed`, names the cause, and registers
nothing: real MLflow server, real SQLite store, the real reconcile loop and quantization job.
No model server is involved before quantization, so the pool is a stand-in that serves nothing.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from controller.domain.phases import Phase
from controller.reconcile.context import Controller
from controller.reconcile.loop import reconcile
from controller.registry import conventions as rc
from controller.registry.mlflow_registry import MlflowRegistry
from controller.service import create_release
from quantize.mlflow_log import EXPERIMENT
from tests.conftest import make_controller
from tests.support.mlflow_server import mlflow_server  # noqa: F401
from tests.support.tiny_models import write_untrained_checkpoint


class IdlePool:
    """Serves nothing; records what the controller asked it to stop."""
    fetches_checkpoints = False

    def __init__(self) -> None:
        self.stopped: list[tuple[str, str]] = []

    def status(self, model: str, version: str):
        return None

    def can_serve(self, quantization: str) -> tuple[bool, str]:
        return False, "serves nothing"      # the build is evaluated on CPU: no server is started early

    def stop(self, model: str, version: str) -> None:
        self.stopped.append((model, version))


def _truncate_weights(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])


CASES = {
    "architecture": (dict(model_type="bert"), None, {}, "unsupported architecture 'bert'"),
    "group_size": (dict(hidden_size=192, intermediate_size=320), None, {}, "not divisible by group size 128"),
    "weights": ({}, _truncate_weights, {}, "model.safetensors is truncated"),
    "calibration": ({}, None, {"calibration": "mlflow-dataset:0123456789abcdef0123456789abcdef/calib"},
                    "run 0123456789abcdef0123456789abcdef not found"),
}


@pytest.fixture
def ctx(mlflow_server, tmp_path: Path) -> Controller:  # noqa: F811
    (tmp_path / "work").mkdir()
    return make_controller(tmp_path / "work", registry=MlflowRegistry(mlflow_server.url), pool=IdlePool())


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_candidate_fails_the_release_and_registers_nothing(ctx: Controller, tmp_path: Path, case: str) -> None:
    dims, spoil, quantize_fields, message = CASES[case]
    model = f"qfail-{case.replace('_', '-')}"
    champion = write_untrained_checkpoint(tmp_path / "v1")
    candidate = write_untrained_checkpoint(tmp_path / "v2", **dims)
    if spoil:
        spoil(candidate)
    ctx.registry.register_checkpoint(model, champion)
    ctx.registry.set_alias(model, rc.ALIAS_CHAMPION, "1")
    version = ctx.registry.register_checkpoint(model, candidate)
    policy = {"name": f"fail-{case}", "quantize": quantize_fields}
    release = create_release(ctx, model, version, policy)

    for _ in range(60):          # the build is a job: each tick starts or observes it, never waits
        release = reconcile(ctx, release.id)
        if release.phase == Phase.FAILED:
            break
        ctx.jobs.join(30)
    assert release.phase == Phase.FAILED, release.reason
    assert release.reason.startswith("quantization failed") and message in release.reason
    assert [v.version for v in ctx.registry.list_versions(model)] == ["1", "2"]   # no build registered
    assert (model, version) in ctx.pool.stopped                                   # and the evaluation servers
    assert {v for _, v in ctx.pool.stopped} <= {version, f"{release.id}-eval-parent", f"{release.id}-eval-build"}
    assert ctx.registry.get_version(model, version).tags[rc.TAG_OUTCOME] == "failed"

    client = MlflowClient(ctx.registry.uri)
    runs = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id],
                              filter_string=f"tags.`{rc.TAG_RELEASE_ID}` = '{release.id}'")
    assert [r.info.status for r in runs] == ["FAILED"]
    assert message in runs[0].data.tags["relctl.error"]
    moves = [(e["from_phase"], e["to_phase"]) for e in ctx.store.events(release.id) if e["kind"] == "transition"]
    assert moves == [("pending", "quantizing"), ("quantizing", "failed")]
