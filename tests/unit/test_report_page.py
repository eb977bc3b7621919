"""The HTML page: escaped text, the tables, embedded charts redrawn only when their data moved."""
import copy
import json
import re
from pathlib import Path

from controller.report import render_report

DATA = json.loads((Path(__file__).parent / "data" / "release_succeeded.json").read_text())


def render(d=DATA, **kw):
    return render_report(d["release"], d["events"], d["policy"]["canary"]["steps"], d["audit"], **kw)


def images(html):
    return dict(re.findall(r'<img id="(\w+)" alt="\w+" src="data:image/png;base64,([^"]+)"', html))


def test_text_from_the_release_is_escaped():
    d = copy.deepcopy(DATA)
    d["release"]["reason"] = "<script>alert(1)</script>"
    d["events"][-1]["reason"] = '"><img src=x onerror=alert(2)>'
    html = render(d)
    assert "<script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_tables_name_quality_judge_and_causes():
    html = render()
    assert "<td>perplexity increase (%)</td><td class=\"num\">0.11</td>" in html
    assert "<td>user (pause requested)</td>" in html
    assert "latest verdict: <b>promote</b>" in html
    assert set(images(html)) == {"timeline", "windows"}


def test_charts_are_redrawn_only_when_their_data_changes():
    first = images(render())
    assert images(render()) == first
    d = copy.deepcopy(DATA)
    d["events"].append({"id": 99, "at": "2026-12-02T18:07:00+00:00", "kind": "transition", "from_phase": "succeeded",
                        "to_phase": "succeeded", "reason": "", "data": {"step": 1}})
    moved = images(render(d))
    assert moved["timeline"] != first["timeline"] and moved["windows"] == first["windows"]


def test_refresh_only_while_active():
    assert "http-equiv=\"refresh\"" not in render(refresh_seconds=5)      # the recorded release has finished
    d = copy.deepcopy(DATA)
    d["release"]["phase"] = "canary"
    assert '<meta http-equiv="refresh" content="5">' in render(d, refresh_seconds=5)


def test_latency_per_track_against_the_fixed_thresholds():
    d = copy.deepcopy(DATA)
    analysis = d["release"]["status"]["analysis"]
    analysis["thresholds"] = {"e2e_p99": 1.0}
    analysis["current"]["last"]["stable"]["latency_over"] = {"e2e_p99": 2}
    analysis["current"]["last"]["candidate"]["latency_over"] = {"e2e_p99": 8}
    html = render(d)
    assert ("<tr><td>canary 50%</td><td>e2e_p99</td><td class=\"num\">1</td><td>2 (1.25%)</td>"
            "<td>8 (5.06%)</td></tr>") in html
    assert "Latency per track" not in render()            # the demo policy judges errors only


def with_speed(speed):
    d = copy.deepcopy(DATA)
    d["release"]["status"]["build"]["report"]["speed"] = speed
    return d


LEVEL = {"requests": 64, "errors": 0, "ttft_p50_ms": 40.0, "ttft_p99_ms": 80.0, "itl_p50_ms": 10.0,
         "itl_p99_ms": 20.0, "output_tokens_per_s": 500.0}


def test_speed_table_per_level_with_build_against_parent_and_the_decision():
    build = {**LEVEL, "concurrency": 8, "ttft_p50_ms": 50.0, "itl_p99_ms": None, "output_tokens_per_s": 400.0,
             "errors": 2}
    html = render(with_speed({"measured": True, "passed": False, "action": "fail",
                              "reason": "speed gate failed (c=8: throughput ratio 0.80 < 0.9):\n| table |",
                              "comparison": {"parent": [{**LEVEL, "concurrency": 8}], "build": [build]}}))
    section = html[html.index("<h2>Speed of the build</h2>"):html.index("<h2>Audit</h2>")]
    assert "speed gate: <b>failed: fail</b> — speed gate failed (c=8: throughput ratio 0.80 &lt; 0.9)" in section
    assert "| table |" not in section
    assert ("<tr><td class=\"num\">8</td><td>parent</td><td>40.0</td><td>80.0</td><td>10.0</td><td>20.0</td>"
            "<td>500.0</td><td>0/64</td></tr>") in section
    assert ("<tr><td class=\"num\">8</td><td>build</td><td>50.0</td><td>80.0</td><td>10.0</td><td>—</td>"
            "<td>400.0</td><td>2/64</td></tr>") in section                       # a missing figure is a dash
    assert ("<td>build vs parent</td><td>+25.0%</td><td>+0.0%</td><td>+0.0%</td><td>—</td><td>-20.0%</td>"
            in section)
    assert html.index("Quality of the build") < html.index("Speed of the build")    # next to the quality table


def test_a_release_without_speed_measurement_says_why():
    assert ('<p id="speed" class="muted">not measured (the build report has no speed measurement)</p>'
            in render())
    html = render(with_speed({"measured": False, "reason": "policy quality.evaluate_on is 'cpu'"}))
    assert "not measured (policy quality.evaluate_on is &#x27;cpu&#x27;)" in html
    old = render(with_speed({"passed": True, "action": "proceed", "reason": "within limits"}))
    assert '<p id="speed">speed gate: <b>passed</b></p>' in old and "figures not kept" in old
