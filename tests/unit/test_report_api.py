"""The report over HTTP: the API route (bearer, viewer) and the browser page (Basic or bearer),
on a real SQLite store; the page reloads itself only while the release is active."""
import base64
import re
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import sessionmaker

from controller.api.app import create_app
from controller.domain.phases import Phase
from controller.report.api import report_router
from controller.store.audit import AuditStore
from controller.store.db import make_engine, migrate
from controller.store.models import AuditRow
from controller.store.releases import ReleaseStore

TOKENS = {"v-tok": "viewer", "o-tok": "operator"}
T0 = datetime(2026, 12, 2, 18, 0, tzinfo=timezone.utc)


@pytest.fixture
def client(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'api.db'}")
    migrate(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    # The report reads only the store and the audit trail (both real here).
    ctx = SimpleNamespace(store=ReleaseStore(sessions), audit=AuditStore(sessions))
    c = TestClient(create_app(ctx, TOKENS, (report_router(ctx),)))
    c.ctx, c.sessions = ctx, sessions
    return c


def move(store, release, phase, step=0, at=1):
    new = release.evolve(phase=phase, step_index=step, phase_started_at=T0 + timedelta(seconds=at))
    return store.save(release, new, [dict(kind="transition", from_phase=release.phase.value, to_phase=phase.value,
                                          reason=f"to {phase.value}", data={"step": step})], new.phase_started_at)


@pytest.fixture
def canary(client):
    store = client.ctx.store
    r = store.create("chat", "2", "1", {"canary": {"steps": [10, 40]}}, T0)
    for i, (phase, step) in enumerate([(Phase.DEPLOYING, 0), (Phase.SHADOW, 0), (Phase.CANARY, 0), (Phase.CANARY, 1)]):
        r = move(store, r, phase, step, at=10 * (i + 1))
    return r


def basic(token, user="me"):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}


def test_report_route_serves_a_self_contained_page(client, canary):
    with client.sessions.begin() as s:
        for track, status in (("stable", 200), ("candidate", 200), ("candidate", 500)):
            s.add(AuditRow(at=T0, model="chat", release_id=canary.id, version="2", track=track, mode="live",
                           status=status, request_sha256="a" * 64, response_sha256="b" * 64))
    r = client.get(f"/api/v1/releases/{canary.id}/report", headers={"Authorization": "Bearer v-tok"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert 'id="phase"' in html and ">canary<" in html
    assert re.search(r'<img id="timeline" alt="timeline" src="data:image/png;base64,iVBOR', html)
    assert "http-equiv=\"refresh\"" not in html       # the API's copy is a document, not a live view
    assert "<td>track candidate live</td><td class=\"num\">2</td>" in html and "status 5xx" in html
    assert not re.search(r'(src|href)="(http|/)', html)  # nothing to fetch: one file


def test_report_route_needs_a_viewer_token_and_a_known_release(client, canary):
    assert client.get(f"/api/v1/releases/{canary.id}/report").status_code == 401
    missing = client.get("/api/v1/releases/rel-nope/report", headers={"Authorization": "Bearer v-tok"})
    assert missing.status_code == 404 and "rel-nope" in missing.json()["detail"]


def test_page_prompts_a_browser_for_basic_auth(client, canary):
    r = client.get(f"/releases/{canary.id}/page")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
    assert client.get(f"/releases/{canary.id}/page", headers=basic("wrong")).status_code == 401
    assert client.get(f"/releases/{canary.id}/page", headers={"Authorization": "Basic %%%"}).status_code == 401


def test_page_reloads_while_active_and_stops_when_finished(client, canary):
    live = client.get(f"/releases/{canary.id}/page", headers=basic("v-tok"))
    assert live.status_code == 200 and '<meta http-equiv="refresh" content="5">' in live.text
    assert live.headers["cache-control"] == "no-store"
    store = client.ctx.store
    done = move(store, move(store, canary, Phase.PROMOTING, 1, 60), Phase.SUCCEEDED, 1, 61)
    final = client.get(f"/releases/{done.id}/page", headers={"Authorization": "Bearer o-tok"})
    assert final.status_code == 200 and "refresh" not in final.text and ">succeeded<" in final.text


def test_report_command_registers_on_relctls_parser():
    import argparse

    from controller.report.cli import add_report_command, write_report
    parser = argparse.ArgumentParser(prog="relctl")
    add_report_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["report", "rel-1", "-o", "r.html", "--api", "http://h:1"])
    assert (args.func, args.release_id, args.out, args.api) == (write_report, "rel-1", "r.html", "http://h:1")
