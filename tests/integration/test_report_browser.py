"""The release page in a real headless Chromium: it renders the report (screenshot), its charts
load from the page itself, and it follows the release live until it ends. `relctl report`
writes the same report as one file that Chromium opens with nothing else to fetch."""
from __future__ import annotations

import threading
import time
from argparse import Namespace
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
import uvicorn
from sqlalchemy.orm import sessionmaker

from controller.api.app import create_app
from controller.domain.phases import Phase
from controller.ports import free_port, wait_http
from controller.report.api import report_router
from controller.report.cli import write_report
from controller.store.audit import AuditStore
from controller.store.db import make_engine, migrate
from controller.store.releases import ReleaseStore
from tests.support.browser import images_loaded, phase_shown, start_chromium

pytestmark = pytest.mark.integration
TOKENS = {"v-tok": "viewer"}
T0 = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report-api")
    engine = make_engine(f"sqlite:///{tmp / 'api.db'}")
    migrate(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    ctx = SimpleNamespace(store=ReleaseStore(sessions), audit=AuditStore(sessions))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ctx, TOKENS, (report_router(ctx),)), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_http(f"http://127.0.0.1:{port}/healthz", 20)
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}", ctx=ctx, port=port)
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser():
    drv = start_chromium()
    yield drv
    drv.quit()


def move(store, release, phase, step=0):
    new = release.evolve(phase=phase, step_index=step, phase_started_at=datetime.now(timezone.utc))
    return store.save(release, new, [dict(kind="transition", from_phase=release.phase.value, to_phase=phase.value,
                                          reason=f"to {phase.value}", data={"step": step})], new.phase_started_at)


def test_page_renders_and_follows_the_release_live(api, browser, tmp_path):
    store = api.ctx.store
    r = store.create("chat", "2", "1", {"canary": {"steps": [10, 40]}}, T0 - timedelta(minutes=3))
    for phase in (Phase.DEPLOYING, Phase.SHADOW, Phase.CANARY):
        r = move(store, r, phase)
    browser.get(f"http://viewer:v-tok@127.0.0.1:{api.port}/releases/{r.id}/page")   # Basic auth, as a user would
    assert phase_shown(browser) == "canary"
    assert all(w > 500 for w in images_loaded(browser)), images_loaded(browser)
    shot = tmp_path / "release-page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 20_000
    r = move(store, move(store, r, Phase.PROMOTING, 0), Phase.SUCCEEDED, 0)
    deadline = time.monotonic() + 20                  # the page reloads every 5 s while active
    while phase_shown(browser) != "succeeded":
        assert time.monotonic() < deadline, "the page did not follow the release"
        time.sleep(0.5)
    assert not browser.find_elements("css selector", "meta[http-equiv=refresh]")   # finished: no more reloads


def test_cli_report_is_one_file_chromium_opens_offline(api, browser, tmp_path, monkeypatch):
    store = api.ctx.store
    r = store.create("other", "5", "4", {"canary": {"steps": [50]}}, T0)
    r = move(store, r, Phase.DEPLOYING)
    monkeypatch.setenv("RELCTL_TOKEN", "v-tok")
    out = tmp_path / "report.html"
    assert write_report(Namespace(api=api.url, release_id=r.id, out=str(out))) == 0
    browser.get(out.as_uri())
    assert phase_shown(browser) == "deploying"
    assert images_loaded(browser) and all(w > 500 for w in images_loaded(browser))
    monkeypatch.setenv("RELCTL_TOKEN", "wrong")
    assert write_report(Namespace(api=api.url, release_id=r.id, out=str(out))) == 1
