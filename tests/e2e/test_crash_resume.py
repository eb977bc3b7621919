"""SIGKILL the controller during the canary: the release continues from the store.

Also checks bad input against the real running stack (CLI and API): an invalid policy
file, an unknown model, a wrong token — each a clear error that changes nothing.
"""
import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from controller.demo.load import LoadGenerator
from controller.demo.run import wait_serving
from controller.demo.stack import MODEL, DemoStack, build_demo_models
from controller.registry.mlflow_registry import MlflowRegistry

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    v1, v2 = build_demo_models()
    s = DemoStack(tmp_path_factory.mktemp("crash")).start()
    registry = MlflowRegistry(s.mlflow.url)
    registry.set_alias(MODEL, "champion", registry.register_checkpoint(MODEL, v1))
    wait_serving(s, timeout_s=400)
    s.versions = (v1, v2)
    s.registry = registry
    yield s
    s.stop()


def releases(stack):
    return stack.api("GET", "/api/v1/releases", params={"model": MODEL}).json()


def cli(stack, *args, token=None):
    env = {**os.environ, "RELCTL_API": stack.api_url, "RELCTL_TOKEN": token or stack.api_token}
    return subprocess.run([sys.executable, "-m", "controller.cli", *args], capture_output=True, text=True,
                          env=env, timeout=60)


def test_bad_input_gets_clear_errors_and_changes_nothing(stack, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("canary:\n  steps: [50, 10]\n")
    r = cli(stack, "policy", "validate", str(bad))
    assert r.returncode == 1 and "canary.steps" in r.stderr
    r = cli(stack, "release", "create", MODEL, "1", "--policy", str(bad))
    assert r.returncode == 1 and "canary.steps" in r.stderr
    r = cli(stack, "release", "create", "no-such-model", "1")
    assert r.returncode == 1 and "no-such-model" in r.stderr and "HTTP 422" in r.stderr
    r = cli(stack, "release", "list", token="wrong-token")
    assert r.returncode == 1 and "HTTP 401" in r.stderr
    resp = httpx.get(f"{stack.api_url}/api/v1/releases", headers={"Authorization": "Bearer nope"})
    assert resp.status_code == 401
    assert releases(stack) == []


def test_sigkill_during_canary_resumes_from_store(stack):
    load = LoadGenerator(stack.gateway_url, MODEL, rps=20).start()
    try:
        candidate = stack.registry.register_checkpoint(MODEL, stack.versions[1])
        rel = wait_for(lambda: next((r for r in releases(stack) if r["candidate_version"] == candidate), None), 60)
        # 1200 s: quantize, two evaluation servers, deploy -- and room for one hung vLLM start to be restarted
        progress = []                                     # the build job's progress, as the API showed it

        def in_canary():
            r = stack.api("GET", f"/api/v1/releases/{rel['id']}").json()
            progress.append((r["status"] or {}).get("job") or {})
            return r["phase"] == "canary"
        wait_for(in_canary, 1200)
        assert_build_progress_was_shown(progress)
        # the AWQ build where this CPU has vLLM's 4-bit kernel, else the full-precision candidate
        served = stack.api("GET", f"/api/v1/releases/{rel['id']}").json()["status"]["deployment"]["version"]
        before = deployments(stack)
        stack.kill_controller()
        time.sleep(3)
        stack.start_controller()
        final = wait_for(lambda: terminal(stack, rel["id"]), 600)
    finally:
        load.stop()
    assert final["phase"] == "succeeded", final
    after = deployments(stack)
    cand = next(d for d in before if d["version"] == served)
    assert next(d for d in after if d["version"] == served)["pid"] == cand["pid"], "candidate restarted"
    starts = pool_starts(stack)
    assert len(starts) == len(set(starts)), f"a server was started twice: {starts}"
    assert served in starts + pool_starts(stack, "pool.adopt"), "the candidate was never started nor adopted"
    events = stack.api("GET", f"/api/v1/releases/{rel['id']}/events").json()
    chain = [e for e in events if e["kind"] == "transition"]
    for prev, nxt in zip(chain, chain[1:]):
        assert prev["to_phase"] == nxt["from_phase"], "an event is missing from the chain"
    steps = [e["data"]["step"] for e in chain if e["to_phase"] == "canary"]
    assert steps == sorted(set(steps)), f"canary steps repeated or lost: {steps}"
    assert [e["to_phase"] for e in chain][-2:] == ["promoting", "succeeded"]
    assert stack.registry.get_alias(MODEL, "champion") == served


def test_audit_trail_records_hashes_of_what_was_served(stack):
    import hashlib
    body = b'{"model": "tiny-chat", "messages": [{"role": "user", "content": "audit me"}], "max_tokens": 4}'
    resp = httpx.post(f"{stack.gateway_url}/v1/chat/completions", content=body,
                      headers={"Content-Type": "application/json"}, timeout=60)
    assert resp.status_code == 200
    digest = hashlib.sha256(body).hexdigest()
    rows = wait_for(lambda: stack.api("GET", "/api/v1/audit", params={"sha256": digest}).json(), 30)
    assert rows[0]["request_sha256"] == digest and rows[0]["mode"] == "live"
    assert rows[0]["response_sha256"] == hashlib.sha256(resp.content).hexdigest()


def test_quantize_command_on_a_registered_version(stack, tmp_path):
    import json

    from mlflow.tracking import MlflowClient

    from quantize.data_files import default_calibration_path
    client = MlflowClient(stack.mlflow.url)                # calibration texts kept as an MLflow artifact
    run_id = client.create_run(client.create_experiment("calibration-e2e")).info.run_id
    client.log_artifact(run_id, str(default_calibration_path()), artifact_path="calib")
    calibration = f"runs:/{run_id}/calib/calibration.txt"
    r = subprocess.run([sys.executable, "-m", "controller.cli", "quantize", MODEL, "1",
                        "--mlflow-uri", stack.mlflow.url, "--workdir", str(tmp_path), "--calibration", calibration],
                       capture_output=True, text=True, timeout=900)
    result = json.loads(r.stdout)                       # stdout is exactly the JSON report
    assert result["spec"]["calibration"] == calibration
    assert r.returncode == (0 if result["gate"]["passed"] else 1), r.stderr[-3000:]
    assert result["mlflow_run_id"] and "perplexity" in result["gate"]["reason"]
    assert 0.2 < result["report"]["weight_size_ratio"] < 0.35          # 4-bit + scales: about 4x smaller
    assert result["report"]["build_perplexity"] > 0
    r = subprocess.run([sys.executable, "-m", "controller.cli", "quantize", MODEL, "99", "--mlflow-uri",
                        stack.mlflow.url, "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "99" in r.stderr
    r = subprocess.run([sys.executable, "-m", "controller.cli", "quantize", MODEL, "1", "--mlflow-uri",
                        stack.mlflow.url, "--workdir", str(tmp_path), "--calibration", f"mlflow-dataset:{run_id}/nope"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "has no input dataset named 'nope'" in r.stderr


def deployments(stack) -> list[dict]:
    from sqlalchemy import create_engine, text
    with create_engine(stack.db_url).connect() as c:
        return [dict(r._mapping) for r in c.execute(text("SELECT version, pid, state FROM deployments"))]


def pool_starts(stack, what: str = "pool.start") -> list[str]:
    """The version of each server the pool started (evaluation servers included), or adopted."""
    lines = (stack.workdir / "controller.log").read_text().splitlines()
    return [json.loads(line)["version"] for line in lines if f'"{what}"' in line]


def terminal(stack, rid):
    r = stack.api("GET", f"/api/v1/releases/{rid}").json()
    return r if r["phase"] in ("succeeded", "rolled_back", "failed", "aborted") else None


def assert_build_progress_was_shown(progress: list[dict]) -> None:
    """During the real build: per-layer quantization, then evaluation sub-steps with their start time;
    on the pool also each evaluation server's state, with servers ready (and items scored) as i of n."""
    steps = [p.get("step") for p in progress]
    assert "quantizing" in steps and "evaluating" in steps, steps
    layers = [p["quantize"] for p in progress if p.get("step") == "quantizing" and "quantize" in p]
    assert any("layer" in ev and ev.get("total", 0) > 0 for ev in layers), layers
    evaluating = [p for p in progress if p.get("step") == "evaluating"]
    assert all("started_at" in p for p in evaluating), evaluating
    if any("on pool" in p.get("detail", "") for p in evaluating):
        assert any(isinstance(p.get("servers"), dict) for p in evaluating), evaluating
        counted = [p for p in evaluating if "total" in p]       # servers ready, items scored: i of n
        assert counted and all(0 <= p["done"] <= p["total"] for p in counted), evaluating


def wait_for(fn, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(1)
    raise TimeoutError(f"condition not met within {timeout} s")
