"""SIGKILL the controller during the canary: the release continues from the store.

Also checks bad input against the real running stack (CLI and API): an invalid policy
file, an unknown model, a wrong token — each a clear error that changes nothing.
"""
import json
import os
import subprocess
import sys
import time

from pathlib import Path

import httpx
import pytest
import yaml

import policies

from controller.demo.load import LoadGenerator
from controller.demo.run import wait_serving
from controller.demo.stack import MODEL, DemoStack, build_demo_models
from controller.domain.phase_table import TERMINAL
from controller.registry.mlflow_registry import MlflowRegistry
from tests.support.mlflow_server import mlflow_ui

pytestmark = pytest.mark.e2e
MODEL_B = "tiny-b"        # a second model, released at the same time without quantization
EVAL_EVERY = 60           # seconds between scheduled evaluations of tiny-b's champion


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    v1, v2 = build_demo_models()
    workdir = tmp_path_factory.mktemp("crash")
    # The demo policy with the steps as written: the loads start with each release's traffic phases
    # (below), so the low-traffic plan would otherwise keep a release in shadow.
    demo = yaml.safe_load(Path(policies.__file__).with_name("demo.yaml").read_text())
    demo["analysis"]["low_traffic"] = "none"
    steps, no_quantize = workdir / "demo-steps.yaml", workdir / "no-quantize.yaml"
    steps.write_text(yaml.safe_dump(demo))
    # tiny-b's live champion is also evaluated every EVAL_EVERY seconds, through the kills below.
    no_quantize.write_text(yaml.safe_dump({**demo, "quantize": {"enabled": False},
                                           "evaluation": {"interval_seconds": EVAL_EVERY,
                                                          "suites": ["builtin:small"]}}))
    s = DemoStack(workdir, watch={MODEL: str(steps), MODEL_B: str(no_quantize)}).start()
    registry = MlflowRegistry(s.mlflow.url)
    for model in (MODEL, MODEL_B):
        registry.set_alias(model, "champion", registry.register_checkpoint(model, v1))
    wait_serving(s, timeout_s=400)
    wait_serving(s, timeout_s=400, model=MODEL_B)
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


@pytest.mark.timeout(2100)
def test_crash_matrix_two_models_at_once(stack):
    """Two models' releases at once, the controller SIGKILLed in every phase they pass through.

    tiny-chat: quantized, evaluated on the pool, deployed, shadow, two canary steps, promoted --
    killed while quantizing, while its evaluation servers start or score, deploying, in shadow,
    in each canary step and while promoting. tiny-b (`quantize.enabled: false`), released once
    tiny-chat's build is done: its candidate's vLLM process is killed in the canary, so it is
    rolled back -- and the controller is killed while rolling back. After each restart both
    releases go on from the store; at the end: the right outcome, no server started twice, no
    second MLflow build, aliases where they belong, and unbroken event chains.

    Each model's load runs only in its traffic phases: on two cores, a vLLM CPU server that
    answers requests keeps its core busy (its worker polls shared memory for up to a second
    after each step), and a server starting beside two such servers was starved until the
    pool restarted it."""
    loads: dict[str, LoadGenerator] = {}
    kills: list[tuple[str, str]] = []                 # (model, where) of each controller kill
    progress: list[dict] = []                         # the build job's progress, as stored
    try:
        a_version = stack.registry.register_checkpoint(MODEL, stack.versions[1])
        b_registered = candidate_killed = False
        targets = {(MODEL, w) for w in ("quantizing", "evaluating", "deploying", "shadow", "canary-0",
                                        "canary-1", "promoting")} | {(MODEL_B, "rolling_back")}
        # 570-690 s here; 1100 s with a busy loop taking one of the two cores. Ends before the
        # test's timeout, saying where it stood (a pause ends it at once).
        deadline = time.monotonic() + 1980
        while time.monotonic() < deadline:
            rows = active_or_last(stack)
            a, b = rows.get(MODEL), rows.get(MODEL_B)
            if a and a["status"].get("job"):
                progress.append(a["status"]["job"])
            if a and not b_registered and a["phase"] not in ("pending", "quantizing", "evaluating"):
                loads[MODEL] = LoadGenerator(stack.gateway_url, MODEL, rps=8).start()
                stack.registry.register_checkpoint(MODEL_B, stack.versions[1])   # while tiny-chat deploys
                b_registered = True
            if b and MODEL_B not in loads and b["phase"] not in ("pending", "deploying"):
                loads[MODEL_B] = LoadGenerator(stack.gateway_url, MODEL_B, rps=5).start()
            if a and a["phase"] in TERMINAL and MODEL in loads:
                loads.pop(MODEL).stop()
            if b and not candidate_killed and b["phase"] == "canary":
                kill_server(stack, MODEL_B, b["candidate_version"])
                candidate_killed = True
            hit = next(((m, w) for m, w in ((MODEL, where(a)), (MODEL_B, where(b))) if (m, w) in targets), None)
            if hit:
                targets.discard(hit)
                kills.append(hit)
                stack.kill_controller()
                time.sleep(1)
                stack.start_controller()
            if a and b and a["phase"] in TERMINAL and b["phase"] in TERMINAL:
                break
            if any(x and x["phase"] == "paused" for x in (a, b)):
                break                      # waits for a person: fail now, with the reason, not at the deadline
            time.sleep(0.05)
    finally:
        for load in loads.values():
            load.stop()
    a_final, b_final = terminal(stack, MODEL), terminal(stack, MODEL_B)
    assert a_final and b_final, f"not ended: {where_it_stood(stack)}; kills so far {kills}"
    assert a_final["phase"] == "succeeded", a_final
    assert b_final["phase"] == "rolled_back", b_final
    # every phase was hit (a phase can be passed between two polls only if it lasted under 50 ms)
    hit = {w for _, w in kills}
    assert hit >= {"quantizing", "evaluating", "shadow", "canary-0", "canary-1", "rolling_back"}, kills
    assert_build_progress_was_shown(progress)
    served = a_final["status"]["deployment"]["version"]
    starts = pool_starts(stack)
    # A kill while evaluating restarts the build job: the build it had finished is reused (its files
    # checked against the record made when it was done), not quantized again; its evaluation server may
    # be started again. Every other server was started once (tiny-b's candidate was killed on purpose,
    # and not restarted), and nothing is left running but the two champions' servers.
    log = (stack.workdir / "controller.log").read_text()
    assert log.count('"quantize.build_reused"') == 1, "the build finished before the kill was not reused"
    assert 1 <= log.count('"quantize job starting"') <= 2     # a kill while quantizing starts it again
    once = [s for s in starts if not s[1].endswith("-eval-build")]
    assert len(once) == len(set(once)), f"a server was started twice: {starts}"
    # the API shows a phase once saved; its effects (the old stable's server stopped) follow it
    champions = {(MODEL, a_final["status"]["deployment"]["version"]), (MODEL_B, "1")}
    try:
        wait_for(lambda: live_servers(stack) == champions, 60)
    except TimeoutError:
        raise AssertionError(f"left running: {deployments(stack)}") from None
    assert not unrecorded_servers(stack), "a server the store does not know of is running"
    assert (MODEL, served) in starts + pool_starts(stack, "pool.adopt"), "the candidate was never started nor adopted"
    versions = stack.registry.list_versions(MODEL)      # v1, v2 and one build: never a second build
    assert sorted(v.version for v in versions) == ["1", "2", "3"], versions
    assert stack.registry.get_alias(MODEL, "champion") == served
    assert stack.registry.get_alias(MODEL_B, "champion") == "1"
    assert a_version == a_final["candidate_version"]
    assert transitions(stack, a_final)[-2:] == ["promoting", "succeeded"]
    assert transitions(stack, b_final)[-2:] == ["rolling_back", "rolled_back"]


def transitions(stack, release: dict) -> list[str]:
    """The phases a release went through, checked to be one unbroken chain with no step repeated."""
    events = stack.api("GET", f"/api/v1/releases/{release['id']}/events").json()
    chain = [e for e in events if e["kind"] == "transition"]
    for prev, nxt in zip(chain, chain[1:]):
        assert prev["to_phase"] == nxt["from_phase"], f"an event is missing from the chain: {chain}"
    steps = [e["data"]["step"] for e in chain if e["to_phase"] == "canary"]
    assert steps == sorted(set(steps)), f"canary steps repeated or lost: {steps}"
    return [e["to_phase"] for e in chain]


def where(row: dict | None) -> str | None:
    """Where a release is, as the crash matrix names it."""
    if row is None:
        return None
    if row["phase"] == "quantizing":
        return "evaluating" if (row["status"].get("job") or {}).get("step") == "evaluating" else "quantizing"
    return f"canary-{row['step_index']}" if row["phase"] == "canary" else row["phase"]


def active_or_last(stack) -> dict[str, dict]:
    """Each model's newest release, read from the store directly (fast enough to catch a one-tick phase)."""
    from sqlalchemy import create_engine, text
    with create_engine(stack.db_url).connect() as c:
        rows = c.execute(text("SELECT id, model, phase, step_index, status, candidate_version, reason FROM releases "
                              "ORDER BY created_at")).mappings().all()
    out = {}
    for row in rows:
        status = row["status"]
        out[row["model"]] = {**row, "status": json.loads(status) if isinstance(status, str) else status or {}}
    return out


def where_it_stood(stack) -> str:
    """One short line per model (CI shows only the end of a failure): phase, the job's step, the
    last events, and the pool's servers."""
    out = []
    for model, row in active_or_last(stack).items():
        job = row["status"].get("job") or {}
        events = stack.api("GET", f"/api/v1/releases/{row['id']}/events").json()[-3:]
        out.append(f"{model} {where(row)} ({row['reason']!r}; job {job.get('step')}: {job.get('message', '')!r}; "
                   f"last events {[(e['kind'], (e['reason'] or '')[:120]) for e in events]})")
    servers = [(d["model"], d["version"], d["state"]) for d in deployments(stack)]
    return f"{' | '.join(out)} | servers {servers}"


def kill_server(stack, model: str, version: str) -> None:
    """SIGKILL a model server's whole process group, as an OOM kill or a crashed GPU would."""
    from sqlalchemy import create_engine, text
    with create_engine(stack.db_url).connect() as c:
        pid = c.execute(text("SELECT pid FROM deployments WHERE model = :m AND version = :v"),
                        {"m": model, "v": version}).scalar()
    assert pid, f"no server of {model} {version}"
    os.killpg(pid, 9)


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


def test_releases_started_and_aborted_from_the_mlflow_ui(stack):
    """On the real stack, as a person in MLflow's UI would drive it: three versions registered at once
    are one release and a queue; tag `relctl.action=abort` set through the UI's endpoint on the version
    `challenger` points at aborts the release; the newest queued version is released next and the one
    between is superseded; alias `candidate` set through the UI on that superseded version starts its
    release, aborted the same way. The champion never moves and no candidate server is left running."""
    url = stack.mlflow.url

    def release_of(version):
        rows = stack.api("GET", "/api/v1/releases", params={"model": MODEL_B}).json()
        return next((r for r in rows if r["candidate_version"] == version), None)

    def abort_from_ui(version):
        mlflow_ui(url, "model-versions/set-tag", {"name": MODEL_B, "version": version, "key": "relctl.action",
                                                  "value": "abort"})
        wait_for(lambda: (release_of(version) or {}).get("phase") == "aborted", 120)

    v3, v4, v5 = [stack.registry.register_checkpoint(MODEL_B, stack.versions[1]) for _ in range(3)]
    wait_for(lambda: stack.registry.get_alias(MODEL_B, "challenger") == v3, 600)   # deployed, in shadow
    abort_from_ui(v3)
    wait_for(lambda: release_of(v5), 60)            # the newest queued version is next...
    assert release_of(v4) is None                   # ...and the one between superseded
    abort_from_ui(v5)                               # the tag works on a candidate not yet deployed too
    mlflow_ui(url, "registered-models/alias", {"name": MODEL_B, "alias": "candidate", "version": v4})
    created = wait_for(lambda: release_of(v4), 60)
    assert "alias_set" in created["reason"] or any("alias_set" in e["reason"] for e in events(stack, created)), \
        events(stack, created)
    wait_for(lambda: stack.registry.get_alias(MODEL_B, "challenger") == v4, 600)
    abort_from_ui(v4)
    assert stack.registry.get_alias(MODEL_B, "champion") == "1"
    assert stack.registry.get_alias(MODEL_B, "candidate") is None          # consumed when the release started
    wait_for(lambda: {v for m, v in live_servers(stack) if m == MODEL_B} == {"1"}, 60)


def events(stack, release: dict) -> list[dict]:
    return stack.api("GET", f"/api/v1/releases/{release['id']}/events").json()


def test_scheduled_evaluations_ran_through_the_kills(stack):
    """tiny-b's champion is evaluated on a schedule through the real gateway and its vLLM server while
    the crash matrix (above) SIGKILLs the controller: no fire time ran twice, a run cut short by a kill
    was recorded as abandoned, every finished run logged its figures on an MLflow run, and the same
    champion scored the same each time (no drift)."""
    from mlflow.tracking import MlflowClient
    deadline = time.monotonic() + 3 * EVAL_EVERY + 60
    while True:
        runs = evaluations(stack, limit=500)
        done = [r for r in runs if r["state"] == "succeeded"]
        if len(done) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert len(done) >= 2, runs
    fire_times = [r["scheduled_for"] for r in runs if r["trigger"] == "schedule"]
    assert len(fire_times) == len(set(fire_times)), f"a fire time ran twice: {runs}"
    unfinished = [r for r in runs[1:] if r["state"] in ("pending", "running")]   # all but the newest ended
    assert not unfinished, runs
    for r in runs:
        assert r["state"] in ("succeeded", "skipped") or "abandoned" in r["reason"], r
    client = MlflowClient(stack.mlflow.url)
    for r in done:
        figures = r["figures"]["builtin:small"]
        assert r["version"] == "1" and figures["items"] == 121 and figures["errors"] == 0, r
        assert not r["drift"]["drifted"], r
        metrics = client.get_run(r["mlflow_run_id"]).data.metrics
        assert metrics["relctl.eval.accuracy"] == pytest.approx(figures["accuracy"]), metrics
    assert len({r["figures"]["builtin:small"]["accuracy"] for r in done}) == 1, done
    assert stack.registry.get_version(MODEL_B, "1").tags["relctl.eval.last_run_id"] == done[0]["mlflow_run_id"]


def deployments(stack) -> list[dict]:
    from sqlalchemy import create_engine, text
    with create_engine(stack.db_url).connect() as c:
        return [dict(r._mapping) for r in c.execute(text("SELECT model, version, pid, state FROM deployments"))]


def live_servers(stack) -> set[tuple[str, str]]:
    """(model, version) of each server starting or serving."""
    return {(d["model"], d["version"]) for d in deployments(stack) if d["state"] in ("starting", "ready")}


def unrecorded_servers(stack) -> set[int]:
    """Process groups of servers the pool started (its mark in their environment) that no live row records."""
    from sqlalchemy.orm import sessionmaker

    from controller.pools.local_vllm import LocalVllmPool
    from controller.store.db import make_engine
    from controller.store.deployments import DeploymentStore
    pool = LocalVllmPool(DeploymentStore(sessionmaker(make_engine(stack.db_url))), stack.workdir)
    return pool.unrecorded_groups()


def pool_starts(stack, what: str = "pool.start") -> list[tuple[str, str]]:
    """(model, version) of each server the pool started (evaluation servers included), or adopted."""
    lines = (stack.workdir / "controller.log").read_text().splitlines()
    return [(e["model"], e["version"]) for e in map(json.loads, (x for x in lines if f'"{what}"' in x))]


def terminal(stack, model):
    """The model's newest release as the API shows it, once it has ended."""
    r = stack.api("GET", "/api/v1/releases", params={"model": model}).json()[0]
    return r if r["phase"] in TERMINAL else None


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


# A release that promotes in seconds once deployed: no build, no shadow, one short canary step
# judged on errors only (two CPU servers differ in speed for reasons unrelated to the model).
FAST_RELEASE = {"name": "drift-e2e", "quantize": {"enabled": False}, "shadow": {"duration_seconds": 0},
                "canary": {"steps": [50], "step_seconds": 5},
                "analysis": {"latency_metrics": [], "min_requests": 20, "min_soak_seconds": 5,
                             "error_rate_tolerance": 0.1, "low_traffic": "none"}}


def test_a_perturbed_build_promoted_with_its_reports_figures_raises_drift(stack, tmp_path):
    """The case scheduled evaluations exist for: a build whose quality report (suite builtin:small, the
    good champion's accuracy) is not what is served -- its weights were perturbed after it was measured.
    Released through the real controller and promoted (the canary judges errors, and it answers), it is
    evaluated at the next fire time through the gateway and its vLLM server: drift, on the accuracy."""
    from tests.support.perturbed_checkpoint import perturb_checkpoint
    started = time.monotonic()
    good_version = stack.registry.get_alias(MODEL_B, "champion")
    good = wait_for(lambda: next((r for r in evaluations(stack) if r["state"] == "succeeded"
                                  and r["version"] == good_version), None), 3 * EVAL_EVERY + 60)
    good_accuracy, measured = good["figures"]["builtin:small"]["accuracy"], time.monotonic()
    assert good_accuracy > 0.1, good        # a champion that answers some items right: room to drop
    bad = perturb_checkpoint(stack.versions[0], tmp_path / "perturbed", noise=2.0)
    version = stack.registry.register_checkpoint(MODEL_B, bad, tags={
        "relctl.quality.suite": "builtin:small", "relctl.quality.build_accuracy": repr(good_accuracy)})
    # tiny-b is watched: the new version starts a release with the watch's policy (shadow, two steps).
    # Abort it and release the version through the API with a fast inline policy instead.
    watched = wait_for(lambda: next((r for r in stack.api("GET", "/api/v1/releases", params={"model": MODEL_B}).json()
                                     if r["candidate_version"] == version), None), 60)
    assert stack.api("POST", f"/api/v1/releases/{watched['id']}/abort").status_code == 200
    wait_for(lambda: stack.api("GET", f"/api/v1/releases/{watched['id']}").json()["phase"] == "aborted", 120)
    resp = stack.api("POST", "/api/v1/releases", json={"model": MODEL_B, "version": version, "policy": FAST_RELEASE})
    assert resp.status_code == 201, resp.text
    release = resp.json()
    load = None
    try:
        deadline = time.monotonic() + 420
        while time.monotonic() < deadline:
            row = stack.api("GET", f"/api/v1/releases/{release['id']}").json()
            if load is None and row["phase"] in ("shadow", "canary"):
                load = LoadGenerator(stack.gateway_url, MODEL_B, rps=8).start()   # evidence for the judge
            if row["phase"] in TERMINAL:
                break
            time.sleep(0.5)
    finally:
        if load is not None:
            load.stop()
    assert row["phase"] == "succeeded", row
    assert stack.registry.get_alias(MODEL_B, "champion") == version
    promoted = time.monotonic()
    run = wait_for(lambda: next((r for r in evaluations(stack) if r["version"] == version
                                 and r["state"] not in ("pending", "running", "skipped", "cancelled")), None),
                   2 * EVAL_EVERY + 60)
    assert run["state"] == "succeeded", run
    figures = run["figures"]["builtin:small"]
    assert figures["items"] == 121 and figures["errors"] == 0, run
    assert figures["accuracy"] < good_accuracy - 0.02, (good_accuracy, run)     # the perturbation worked
    assert run["drift"]["drifted"], run
    assert run["drift"]["suites"]["builtin:small"]["baseline"]["source"] == "quality report", run
    assert "builtin:small: accuracy" in run["reason"], run
    drift_events = [e for e in events(stack, release) if e["kind"] == "evaluation_drift"]
    assert drift_events and drift_events[-1]["data"]["run_id"] == run["id"], events(stack, release)
    assert stack.registry.get_version(MODEL_B, version).tags["relctl.eval.drift"] == "true"
    assert f'relctl_eval_drift{{model="{MODEL_B}"}} 1.0' in httpx.get(f"{stack.api_url}/metrics/").text
    print(f"drift: accuracy {good_accuracy:.3f} -> {figures['accuracy']:.3f}; good figures after "
          f"{measured - started:.0f} s, promoted after {promoted - started:.0f} s, drift after "
          f"{time.monotonic() - started:.0f} s")


def evaluations(stack, limit: int = 50) -> list[dict]:
    """tiny-b's evaluation runs, newest first."""
    return stack.api("GET", f"/api/v1/models/{MODEL_B}/evaluations", params={"limit": limit}).json()["runs"]
