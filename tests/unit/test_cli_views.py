"""The rich views of `relctl release get/watch` and `relctl status`, drawn from recorded API
answers (tests/unit/data/release_snapshots.json) and captured as text."""
import io
import json
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from controller import cli
from controller.cli_views import job_progress, log_share, release_view, status_table, watch

SNAP = json.loads((Path(__file__).parent / "data" / "release_snapshots.json").read_text())
NOW = datetime(2026, 12, 2, 18, 6, 0, tzinfo=timezone.utc)


def render(renderable, width: int = 110) -> str:
    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return "\n".join(line.strip("│ ") for line in console.export_text().splitlines())   # no panel border


def test_canary_view_shows_phase_weights_counts_and_evidence():
    text = render(release_view(SNAP["canary"], now=NOW))
    assert "phase canary  step 0  for 12s" in text
    assert "candidate v2 · stable v1" in text
    stable = next(line for line in text.splitlines() if line.startswith("stable"))
    candidate = next(line for line in text.splitlines() if line.startswith("candidate  "))
    assert stable.split()[1:5] == ["80%", "150", "1", "0.67%"]
    assert candidate.split()[1:5] == ["20%", "38", "7", "18.42%"]
    assert "canary 20%, 9s" in text
    assert "judge continue — errors: e-value 5.2 < 15.06" in text
    evidence = next(line for line in text.splitlines() if line.startswith("errors "))
    assert evidence.split()[1:3] == ["5.2", "15.1"]


def test_quantizing_view_shows_the_sub_step_and_its_bar():
    text = render(release_view(SNAP["quantizing"], now=NOW))
    assert "job build running: quantizing awq: layer 3/4" in text
    assert "━" in text                                   # the progress bar
    assert "weight" not in text                          # no split before the release routes


@pytest.mark.parametrize("job,expected", [
    ({"step": "downloading", "detail": "version 2"}, ("downloading — version 2", None, None)),
    ({"step": "quantizing", "quantize": {"event": "layer_start", "layer": 0, "total": 8, "stage": "awq"}},
     ("quantizing awq: layer 0/8", 0, 8)),
    ({"step": "evaluating", "detail": "scoring", "done": 40, "total": 64}, ("evaluating scoring: 40/64", 40, 64)),
])
def test_job_progress(job, expected):
    assert job_progress(job) == expected


def test_log_share():
    assert log_share(1.0, 20.0) == 0.0 and log_share(20.0, 20.0) == 1.0 and log_share(500.0, 20.0) == 1.0
    assert log_share(4.47, 20.0) == pytest.approx(0.5, abs=0.01)


def test_status_table_lists_each_release_once():
    text = render(status_table([SNAP["quantizing"], SNAP["canary"]], now=NOW), width=150)
    rows = [line for line in text.splitlines() if "rel-7b01d4aa" in line]
    assert len(rows) == 2
    assert "quantizing awq: layer 3/4" in rows[0] and "80/20" in rows[1] and "judge: continue" in rows[1]
    assert "none" in render(status_table([], now=NOW))


def test_watch_redraws_until_the_release_ends():
    answers = iter([SNAP["quantizing"], SNAP["canary"], SNAP["ended"]])
    console = Console(record=True, width=110, file=io.StringIO(), color_system=None)
    last = watch(lambda: next(answers), console, sleep=lambda s: None)
    assert last["phase"] == "rolled_back"
    assert "rolled_back" in console.export_text()


def test_cli_get_status_and_json(monkeypatch, capsys):
    calls = []

    def fake_request(method, url, **kw):
        calls.append((method, url, kw.get("params")))
        body = [SNAP["canary"]] if url.endswith("/releases") else SNAP["canary"]
        return httpx.Response(200, json=body, request=httpx.Request(method, url))

    monkeypatch.setattr(httpx, "request", fake_request)
    assert cli.main(["release", "--api", "http://api", "get", "rel-7b01d4aa", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["weights"]["candidate"] == 20.0
    assert cli.main(["release", "--api", "http://api", "get", "rel-7b01d4aa"]) == 0
    assert "judge continue" in capsys.readouterr().out
    assert cli.main(["status", "--api", "http://api"]) == 0
    assert "active releases" in capsys.readouterr().out
    assert calls[-1] == ("GET", "http://api/api/v1/releases", {"active": "true"})


def test_progress_line_reads_one_snapshot():
    from controller.cli_views import progress_line
    assert progress_line(SNAP["canary"]) == ("phase canary       step 0 · weights stable/candidate 80/20 · "
                                             "requests 150/38 errors 1/7 · judge: continue")
    assert progress_line(SNAP["quantizing"]).endswith("weights stable/candidate — · quantizing awq: layer 3/4")
    ended = progress_line(SNAP["ended"])
    assert "rolled_back" in ended and "requests" not in ended


SERVERS = {"kind": "build", "state": "running", "attempt": 1, "step": "evaluating",
           "detail": "starting parent and build servers on pool local", "started_at": "2026-12-02T18:05:18+00:00",
           "servers": {"parent": "ready", "build": "starting"}, "done": 1, "total": 2}
SCORING = {"kind": "build", "state": "running", "attempt": 1, "step": "evaluating",
           "detail": "scoring builtin:large on pool local", "started_at": "2026-12-02T18:04:55+00:00",
           "done": 3400, "total": 12100}
SPEED = {"kind": "build", "state": "running", "attempt": 1, "step": "measuring speed",
         "detail": "concurrency levels 1, 8, 32", "started_at": "2026-12-02T18:05:51+00:00",
         "done": 1, "total": 3, "item": "concurrency 8"}


def with_job(job):
    return {**SNAP["quantizing"], "status": {"job": job}}


@pytest.mark.parametrize("job,expected", [
    (SERVERS, ("evaluating starting parent and build servers on pool local: 1/2 (parent ready, build starting)"
               " · 42s", 1, 2)),
    (SCORING, ("evaluating scoring builtin:large on pool local: 3400/12100 · 1m05s", 3400, 12100)),
    (SPEED, ("measuring speed concurrency levels 1, 8, 32: 1/3 (concurrency 8) · 9s", 1, 3)),
])
def test_sub_steps_show_what_runs_its_count_and_elapsed_time(job, expected):
    assert job_progress(job, NOW) == expected
    assert job_progress(job)[0] == expected[0].rsplit(" · ", 1)[0]    # no clock, no elapsed time


def test_the_view_draws_the_sub_step_its_bar_and_elapsed_time_from_one_snapshot():
    view = release_view(with_job(SCORING), now=NOW)
    text = render(view)
    assert "job build running: evaluating scoring builtin:large on pool local: 3400/12100 · 1m05s" in text
    bar = view.renderable.renderables[1].renderables[1]                  # header, then the job: label, bar
    assert (bar.completed, bar.total) == (3400, 12100)
    later = render(release_view(with_job(SCORING), now=NOW.replace(minute=8)))
    assert "3400/12100 · 3m05s" in later                               # elapsed from the stored start


def test_progress_line_and_status_table_show_elapsed_time():
    from controller.cli_views import progress_line
    assert progress_line(with_job(SERVERS), now=NOW).endswith("(parent ready, build starting) · 42s")
    assert progress_line(with_job(SERVERS)).endswith("(parent ready, build starting)")   # stable between polls
    text = render(status_table([with_job(SPEED)], now=NOW), width=220)
    assert "measuring speed concurrency levels 1, 8, 32: 1/3 (concurrency 8) · 9s" in text
