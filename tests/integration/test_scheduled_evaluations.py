"""Scheduled evaluations end to end: APScheduler on the controller's SQLite store, a real MLflow
server, the real gateway process, and an OpenAI-compatible upstream behind it (tests/support/
fake_openai.py, so the test can make the live model answer wrongly on purpose).

One job on a 3-second interval: it runs through the gateway as evaluation traffic (not in the
gateway's user metrics), logs an MLflow run linked to the version, survives a scheduler restart
without running a fire time twice, and raises drift once the upstream answers wrongly.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from mlflow import MlflowClient
from prometheus_client import REGISTRY

from controller.reconcile.context import utc_now
from controller.registry.mlflow_registry import MlflowRegistry
from controller.scheduler import evaluations as ev
from controller.scheduler.mlflow_eval import EXPERIMENT, logged_model_id
from controller.scheduler.runs import DRIFT_EVENT
from controller.scheduler.store import SUCCEEDED
from controller.traffic.base import Backend, RouteSpec
from controller.traffic.embedded import EmbeddedGatewayRouter
from policies.evaluation import EvaluationPolicy
from tests.conftest import make_controller
from tests.support.gateway_process import GatewayProcess
from tests.support.fake_openai import FakeOpenAI
from tests.support.mlflow_server import mlflow_server  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

TOKEN = "eval-token"
MODEL = "evaltiny"
INTERVAL = 3


def _checkpoint(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    return folder


def _wait_runs(env, count: int, timeout: float = 40.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [r for r in env.store.history(MODEL, 100) if r.finished_at is not None]
        if len(done) >= count:
            return sorted(done, key=lambda r: r.started_at)
        time.sleep(0.2)
    raise TimeoutError(f"fewer than {count} finished evaluations: {env.store.history(MODEL, 100)}")


def _start(ctx, settings, policy):
    sched = BackgroundScheduler(timezone="UTC")
    sched.start()
    ev.schedule_evaluations(sched, ctx, settings, policy_of=lambda m: policy, models=[MODEL])
    return sched


def _user_requests(base: str) -> float:
    text = httpx.get(f"{base}/metrics").text
    series = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("relctl_requests_total{")]
    assert series, "the route's zero series are missing from the gateway's /metrics"
    return sum(series)


def test_scheduled_evaluation_through_the_gateway(mlflow_server, tmp_path):  # noqa: F811
    suite = tmp_path / "capitals.jsonl"
    suite.write_text("".join(json.dumps({"prompt": f"Q{i}: capital of France?", "answer": "Paris"}) + "\n"
                             for i in range(8)))
    registry = MlflowRegistry(mlflow_server.url)
    version = registry.register_checkpoint(MODEL, _checkpoint(tmp_path / "ckpt"), tags={
        "relctl.quality.suite": str(suite), "relctl.quality.build_accuracy": "1.0"})
    registry.set_alias(MODEL, "champion", version)
    ctx = make_controller(tmp_path, registry=registry, clock=utc_now)
    release = ctx.store.create(MODEL, version, None, {}, utc_now())
    db_url = f"sqlite:///{tmp_path / 'relctl.db'}"          # migrated by make_controller; the gateway audits here
    upstream = FakeOpenAI("Paris").start()
    gateway = GatewayProcess(tmp_path / "gateway", TOKEN, "--db-url", db_url).start()
    base = gateway.url
    policy = SimpleNamespace(validators=[{"type": "regex", "pattern": "^[A-Z]"}], evaluation=EvaluationPolicy(
        interval_seconds=INTERVAL, suites=[str(suite)], max_accuracy_drop_pct=10, max_compliance_drop_pct=10))
    settings = SimpleNamespace(database_url=lambda: db_url, gateway_admin_url=base, models=[])
    sched = None
    try:
        EmbeddedGatewayRouter(base, TOKEN).apply(RouteSpec(model=MODEL, release_id=release.id, weights={"stable": 100},
                                                           backends=(Backend("stable", upstream.url, version),)))
        sched = _start(ctx, settings, policy)
        first = _wait_runs(ev.current_env(), 1)[0]
        assert first.state == SUCCEEDED and first.trigger == "schedule" and first.version == version
        assert first.figures[str(suite)]["accuracy"] == 1.0 and not first.drift["drifted"]
        assert upstream.calls >= 8 and _user_requests(base) == 0        # not counted as user traffic
        _check_mlflow_run(mlflow_server.url, registry, version, first.mlflow_run_id, str(suite))

        sched.shutdown(wait=True)                                          # the controller restarts
        ctx.jobs.join(30)
        before = len(ev.current_env().store.history(MODEL, 100))
        sched = _start(ctx, settings, policy)
        runs = _wait_runs(ev.current_env(), before + 1)
        fires = [r.scheduled_for for r in runs]
        assert len(set(fires)) == len(fires)                              # no fire time ran twice
        assert all((b - a).total_seconds() >= INTERVAL - 0.01 for a, b in zip(fires, fires[1:]))
        assert all(a.finished_at <= b.started_at for a, b in zip(runs, runs[1:]))   # never two at once

        upstream.reply = "london"                                          # the live model goes bad
        deadline = time.monotonic() + 40
        while not any(r.drift.get("drifted") for r in ev.current_env().store.history(MODEL, 100)):
            assert time.monotonic() < deadline, "no drift raised"
            time.sleep(0.2)
        drifted = next(r for r in ev.current_env().store.history(MODEL, 100) if r.drift.get("drifted"))
        assert "accuracy 100.0% -> 0.0%" in drifted.reason and "compliance 100.0% -> 0.0%" in drifted.reason
        assert any(e["kind"] == DRIFT_EVENT and e["data"]["run_id"] == drifted.id
                   for e in ctx.store.events(release.id))
        assert REGISTRY.get_sample_value("relctl_eval_drift", {"model": MODEL}) == 1.0
        assert MlflowClient(mlflow_server.url).get_run(drifted.mlflow_run_id).data.tags["relctl.eval.drift"] == "true"
    finally:
        if sched is not None and sched.running:
            sched.shutdown(wait=True)
        ctx.jobs.join(30)
        ev.set_env(None)
        gateway.stop()
        upstream.stop()


def _check_mlflow_run(uri: str, registry: MlflowRegistry, version: str, run_id: str, suite: str) -> None:
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert client.get_experiment(run.info.experiment_id).name == EXPERIMENT
    assert run.info.status == "FINISHED" and run.data.tags["relctl.version"] == version
    assert run.data.metrics["relctl.eval.accuracy"] == 1.0 and run.data.metrics["relctl.eval.compliance"] == 1.0
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == [suite]
    model_id = logged_model_id(registry.get_version(MODEL, version).source)
    assert model_id and [m.model_id for m in run.inputs.model_inputs] == [model_id]
    assert registry.get_version(MODEL, version).tags["relctl.eval.last_run_id"] == run_id
