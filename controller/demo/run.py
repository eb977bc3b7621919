"""`relctl demo`: one real release on this machine, healthy or with a faulty candidate."""
from __future__ import annotations

import json
import signal
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from controller.demo.load import LoadGenerator
from controller.domain.phase_table import TERMINAL as ENDED
from controller.demo.stack import MODEL, DemoStack, build_demo_models

TERMINAL = {p.value for p in ENDED}   # the phase table says which phases end a release
FAULT = {"error_rate": 0.5, "latency_ms": 0, "truncate": False}


def say(msg: str) -> None:
    print(f"[relctl demo {time.strftime('%H:%M:%S', time.gmtime())}Z] {msg}", file=sys.stderr, flush=True)


def run_demo(scenario: str, as_json: bool = False, workdir: str | None = None, timeout_s: float = 1200) -> int:
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="relctl-demo-"))
    started = time.monotonic()
    say(f"scenario {scenario}; files in {root}")
    say("building tiny Llama checkpoints v1 and v2 (cached after the first run)")
    v1, v2 = build_demo_models()
    stack = DemoStack(root)
    try:
        say("starting MLflow, Prometheus, the gateway and the controller")
        stack.start()
        summary = _run_release(stack, v1, v2, scenario, timeout_s)
        summary["report"] = str(_write_report(stack, summary["release_id"], root))
        summary["alerts"] = _alerts(stack, expect=summary["outcome"] != "succeeded")
        summary["wall_seconds"] = round(time.monotonic() - started, 1)
    finally:
        # A second Ctrl-C (or timeout's SIGTERM) must not interrupt the clean-up and orphan servers.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        say("stopping everything it started")
        stack.stop()
    say(f"outcome {summary['outcome']} in {summary['wall_seconds']} s; report: {summary['report']}")
    if summary["alerts"]:
        say(f"alerts delivered by Alertmanager: {', '.join(summary['alerts'])}")
    if as_json:
        print(json.dumps(summary))
    expected = "succeeded" if scenario == "healthy" else "rolled_back"
    return 0 if summary["outcome"] == expected else 1


def _run_release(stack: DemoStack, v1: Path, v2: Path, scenario: str, timeout_s: float) -> dict:
    from controller.registry.mlflow_registry import MlflowRegistry

    registry = MlflowRegistry(stack.mlflow.url)
    champion = registry.register_checkpoint(MODEL, v1, description="demo base model")
    registry.set_alias(MODEL, "champion", champion)
    say(f"registered v1 as {MODEL} version {champion}, alias champion; waiting for it to serve")
    wait_serving(stack, timeout_s=400)
    load = LoadGenerator(stack.gateway_url, MODEL, rps=20).start()
    try:
        candidate = registry.register_checkpoint(MODEL, v2, description="demo candidate (v1 trained further)")
        say(f"registered v2 as version {candidate}; the controller should notice it")
        release_id = wait_release(stack, candidate, timeout_s=60)
        if scenario == "faulty":
            stack.api("PUT", f"/api/v1/faults/{MODEL}/candidate", json=FAULT).raise_for_status()
            say(f"fault injected on the candidate track: {FAULT['error_rate']:.0%} errors")
        release = follow(stack, release_id, timeout_s)
    finally:
        load.stop()
    return summarize(stack, release)


def _alerts(stack: DemoStack, expect: bool) -> list[str]:
    """Names of the alerts Alertmanager delivered; a release that did not succeed should raise one."""
    if expect:
        try:
            stack.alerts.wait_for(lambda body: body.get("status") == "firing", timeout=30)
        except TimeoutError:
            say("no alert delivered within 30 s")
    return sorted({a["labels"].get("alertname", "?") for body in stack.alerts.received
                   for a in body.get("alerts", [])})


def _write_report(stack: DemoStack, release_id: str, root: Path) -> Path:
    from controller.report.cli import fetch_report
    return fetch_report(stack.api_url, stack.api_token, release_id, root / f"report-{release_id}.html").resolve()


def wait_serving(stack: DemoStack, timeout_s: float, model: str = MODEL) -> None:
    deadline = time.monotonic() + timeout_s
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    while time.monotonic() < deadline:
        try:
            if httpx.post(f"{stack.gateway_url}/v1/chat/completions", json=body, timeout=10).status_code == 200:
                scrape_backends(stack, model)
                return
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise TimeoutError(f"{model} not served through the gateway after {timeout_s:.0f} s")


def wait_release(stack: DemoStack, version: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for r in stack.api("GET", "/api/v1/releases", params={"model": MODEL}).json():
            if r["candidate_version"] == version:
                say(f"release {r['id']} started for version {version}")
                return r["id"]
        time.sleep(1)
    raise TimeoutError(f"no release started for version {version} within {timeout_s:.0f} s")


def follow(stack: DemoStack, release_id: str, timeout_s: float) -> dict:
    """Print a line whenever the release moves, each from one API answer (phase, weights, counts
    and job progress read together; the weights are those the stored phase asks for)."""
    from controller.cli_views import progress_line

    deadline, last, last_stage, printed_at = time.monotonic() + timeout_s, None, None, 0.0
    while time.monotonic() < deadline:
        release = stack.api("GET", f"/api/v1/releases/{release_id}").json()
        scrape_backends(stack)
        line = progress_line(release)
        job = (release.get("status") or {}).get("job") or {}
        stage = (release["phase"], release.get("step_index"), job.get("step"), job.get("detail"))
        # A new phase, step or sub-step at once; changing counts (items scored, requests) every 10 s.
        if stage != last_stage or (line != last and time.monotonic() - printed_at >= 10):
            started = datetime.fromisoformat(release["phase_started_at"])
            elapsed = (datetime.now(started.tzinfo) - started).total_seconds()
            say(f"{line} ({elapsed:.0f} s in phase)" + (f" — {release['reason']}" if release["reason"] else ""))
            last, last_stage, printed_at = line, stage, time.monotonic()
        if release["phase"] in TERMINAL:
            return release
        time.sleep(2)
    raise TimeoutError(f"release {release_id} did not finish within {timeout_s:.0f} s")


def scrape_backends(stack: DemoStack, model: str = MODEL) -> None:
    """Let Prometheus scrape each vLLM server behind the gateway (vllm:* metrics)."""
    resp = httpx.get(f"{stack.gateway_url}/admin/routes/{model}", timeout=5,
                     headers={"Authorization": f"Bearer {stack.gateway_token}"})
    if resp.status_code == 200:
        for backend in resp.json().get("backends", []):
            stack.prometheus.add_target(backend["url"].split("://")[-1], {"job": "vllm"})


def track_counts(stack: DemoStack) -> dict:
    """Live requests and errors per track, from the gateway's own counters."""
    text = httpx.get(f"{stack.gateway_url}/metrics", timeout=5).text
    out = {"requests": {"stable": 0, "candidate": 0}, "errors": {"stable": 0, "candidate": 0}}
    for family in text_string_to_metric_families(text):
        key = {"relctl_requests": "requests", "relctl_errors": "errors"}.get(family.name)
        for s in family.samples if key else ():
            if s.name.endswith("_total") and s.labels.get("mode") == "live" and s.labels.get("track") in out[key]:
                out[key][s.labels["track"]] += int(s.value)
    return out


def summarize(stack: DemoStack, release: dict) -> dict:
    events = stack.api("GET", f"/api/v1/releases/{release['id']}/events").json()
    transitions = [e for e in events if e["kind"] == "transition"]
    phases = ["pending"] + [e["to_phase"] for e in transitions]
    counts = track_counts(stack)
    return {"outcome": release["phase"], "release_id": release["id"], "phases": phases,
            "requests": counts["requests"], "candidate_errors_served": counts["errors"]["candidate"],
            "detection_seconds": detection_seconds(transitions), "reason": release["reason"],
            "deployed": _deployed(release), "quality": _quality(release), "speed": _speed(release)}


def _deployed(release: dict) -> dict | None:
    """Which artifact the candidate track served (the AWQ build, or full precision and why)."""
    choice = release["status"].get("deployment")
    return {k: choice[k] for k in ("version", "quantization", "reason")} if choice else None


def _quality(release: dict) -> dict | None:
    quality = release["status"].get("build", {}).get("report", {}).get("quality")
    keys = ("evaluated_on", "suite", "eval_items", "parent_only_correct", "build_only_correct",
            "perplexity_increase_pct", "accuracy_drop_pct", "weight_size_ratio")
    return {k: quality.get(k) for k in keys} if quality else None


def _speed(release: dict) -> dict | None:
    """The speed gate's verdict on the build (measured on the pool's vLLM), or why it was not measured."""
    speed = release["status"].get("build", {}).get("report", {}).get("speed")
    keys = ("measured", "passed", "action", "reason")
    return {k: speed[k] for k in keys if k in speed} if speed else None


def detection_seconds(transitions: list[dict]) -> float | None:
    """From the first moment the candidate saw traffic (shadow or canary) to the rollback decision."""
    exposed = next((e["at"] for e in transitions if e["to_phase"] in ("shadow", "canary")), None)
    rollback = next((e["at"] for e in transitions if e["to_phase"] == "rolling_back"), None)
    if exposed is None or rollback is None:
        return None
    return round((datetime.fromisoformat(rollback) - datetime.fromisoformat(exposed)).total_seconds(), 1)
