"""Both demo scenarios, end to end: real MLflow server, Prometheus, gateway, vLLM on CPU, AWQ."""
import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e

FULL_PATH = ["pending", "quantizing", "evaluating", "deploying", "shadow", "canary"]


def run_demo(scenario: str, tmp_path) -> dict:
    proc = subprocess.run([sys.executable, "-m", "controller.cli", "demo", "--scenario", scenario, "--json",
                           "--workdir", str(tmp_path / scenario)], capture_output=True, text=True, timeout=1500)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON summary; exit {proc.returncode}\n{proc.stderr[-4000:]}"
    summary = json.loads(lines[-1])
    summary["exit_code"] = proc.returncode
    print(json.dumps(summary))
    return summary


def test_healthy_release_is_promoted(tmp_path):
    s = run_demo("healthy", tmp_path)
    assert s["outcome"] == "succeeded", s
    assert s["exit_code"] == 0
    assert s["phases"][:6] == FULL_PATH and s["phases"][-2:] == ["promoting", "succeeded"]
    assert s["requests"]["candidate"] > 0 and s["requests"]["stable"] > 0
    assert s["candidate_errors_served"] == 0
    assert s["detection_seconds"] is None
    # the AWQ build is measured through vLLM where this CPU has vLLM's 4-bit kernel, speed included,
    # and served unless the speed gate found it slower (then the full-precision candidate, and why)
    from controller.pools.local_vllm import cpu_has_4bit_kernel
    awq_here = cpu_has_4bit_kernel()
    assert s["quality"]["evaluated_on"] == ("vllm (pool local)" if awq_here else "cpu (dequantized)")
    assert s["speed"]["measured"] == awq_here, s["speed"]
    awq_served = awq_here and s["speed"]["action"] == "proceed"
    assert s["deployed"]["quantization"] == ("awq" if awq_served else "none"), s["deployed"]
    if awq_here and not awq_served:
        assert "slower than the policy allows" in s["deployed"]["reason"] and "| conc" in s["speed"]["reason"]
    assert abs(s["quality"]["perplexity_increase_pct"]) < 5 and 0.2 < s["quality"]["weight_size_ratio"] < 0.3
    # the default accuracy gate (1.2 points, inconclusive fails) decided on 2,000 paired answers
    assert (s["quality"]["suite"], s["quality"]["eval_items"]) == ("builtin:medium", 2000), s["quality"]


    assert_report_opens_in_chromium(s)


def assert_report_opens_in_chromium(s: dict) -> None:
    """The finished release's report: one file, its charts drawn, read in a real headless Chromium."""
    from pathlib import Path

    from tests.support.browser import images_loaded, phase_shown, start_chromium
    browser = start_chromium()
    try:
        browser.get(Path(s["report"]).as_uri())
        assert phase_shown(browser) == s["outcome"]
        widths = images_loaded(browser)
        assert widths and all(w > 500 for w in widths), widths
    finally:
        browser.quit()


def test_faulty_release_is_rolled_back_by_the_controller(tmp_path):
    s = run_demo("faulty", tmp_path)
    assert s["outcome"] == "rolled_back", s
    assert s["exit_code"] == 0
    assert s["phases"][:5] == FULL_PATH[:5] and s["phases"][-2:] == ["rolling_back", "rolled_back"]
    assert "promoting" not in s["phases"]
    assert s["detection_seconds"] is not None and s["detection_seconds"] < 120
    assert "RelctlReleaseRolledBack" in s["alerts"], s["alerts"]      # Prometheus -> Alertmanager -> receiver
    assert_report_opens_in_chromium(s)
