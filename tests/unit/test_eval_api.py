"""The evaluation API and `relctl evals` on the real FastAPI app (TestClient), a stub gateway behind."""
from __future__ import annotations

import argparse

import httpx
import pytest
from fastapi.testclient import TestClient

from controller.api.app import create_app
from controller.api.auth import require
from controller.scheduler import evaluations as ev
from controller.scheduler.api import evaluations_router
from controller.scheduler.cli import add_evals_command
from tests.unit.eval_support import MODEL, make_env

TOKENS = {"v-tok": "viewer", "o-tok": "operator"}
VIEWER, OPERATOR = {"Authorization": "Bearer v-tok"}, {"Authorization": "Bearer o-tok"}


@pytest.fixture
def setup(tmp_path):
    env, suite, _ = make_env(tmp_path)
    ev.set_env(env)
    client = TestClient(create_app(env.ctx, TOKENS, extra_routers=(evaluations_router(env.ctx, require),)))
    yield env, client
    env.ctx.jobs.join(10)
    ev.set_env(None)


def test_run_then_list_the_history(setup):
    env, client = setup
    started = client.post(f"/api/v1/models/{MODEL}/evaluations/run", headers=OPERATOR)
    assert started.status_code == 202 and started.json()["trigger"] == "manual"
    env.ctx.jobs.join(10)
    doc = client.get(f"/api/v1/models/{MODEL}/evaluations", headers=VIEWER).json()
    assert doc["schedule"]["cron"] is None and doc["running"] is None
    assert [(r["id"], r["state"], r["version"]) for r in doc["runs"]] == [(started.json()["id"], "succeeded", "1")]


@pytest.mark.parametrize("method, path, headers, status, detail", [
    ("POST", f"/api/v1/models/{MODEL}/evaluations/run", VIEWER, 403, "needs operator"),
    ("GET", f"/api/v1/models/{MODEL}/evaluations", {}, 401, "missing bearer token"),
    ("GET", "/api/v1/models/other/evaluations", VIEWER, 404, "not watched by this controller"),
    ("GET", f"/api/v1/models/{MODEL}/evaluations?limit=0", VIEWER, 422, None),
])
def test_errors_name_the_problem(setup, method, path, headers, status, detail):
    _, client = setup
    resp = client.request(method, path, headers=headers)
    assert resp.status_code == status
    if detail:
        assert detail in resp.json()["detail"]
    else:
        assert resp.json()["detail"][0]["loc"] == ["query", "limit"]


def test_no_champion_or_busy_is_409_and_no_scheduler_is_404(setup):
    env, client = setup
    env.ctx.registry.delete_alias(MODEL, "champion")
    resp = client.post(f"/api/v1/models/{MODEL}/evaluations/run", headers=OPERATOR)
    assert resp.status_code == 409 and "no champion" in resp.json()["detail"]
    env.ctx.registry.set_alias(MODEL, "champion", "1")
    assert env.store.acquire(MODEL, "ev-busy", "replica-b", env.ctx.clock(), 600)
    busy = client.post(f"/api/v1/models/{MODEL}/evaluations/run", headers=OPERATOR)
    assert busy.status_code == 409 and "another evaluation of chat is running (ev-busy)" in busy.json()["detail"]
    ev.set_env(None)
    none = client.get(f"/api/v1/models/{MODEL}/evaluations", headers=VIEWER)
    assert none.status_code == 404 and "no evaluation scheduler runs" in none.json()["detail"]


def test_cli_history_prints_a_table(setup, monkeypatch, capsys):
    env, client = setup
    monkeypatch.setenv("RELCTL_TOKEN", "o-tok")

    def via_app(method, url, **kw):
        return client.request(method, httpx.URL(url).raw_path.decode(), params=kw.get("params"),
                              headers=kw.get("headers"))
    monkeypatch.setattr("controller.scheduler.cli.httpx.request", via_app)
    parser = argparse.ArgumentParser()
    add_evals_command(parser.add_subparsers(dest="command"))
    run = parser.parse_args(["evals", "run", MODEL])
    assert run.func(run) == 0
    env.ctx.jobs.join(10)
    capsys.readouterr()
    history = parser.parse_args(["evals", "history", MODEL])
    assert history.func(history) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("RUN") and len(lines) == 2 and " succeeded " in lines[1]
    missing = parser.parse_args(["evals", "list", "other"])
    assert missing.func(missing) == 1
    assert "HTTP 404" in capsys.readouterr().err
