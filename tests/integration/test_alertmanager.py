"""Alerts end to end: the controller's release series -> real Prometheus evaluating dashboards/rules
-> real Alertmanager running dashboards/alertmanager.yml -> a webhook receiver on 127.0.0.1."""
from __future__ import annotations

import json
import subprocess
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy.orm import sessionmaker

from controller.domain.phases import Phase
from controller.report.metrics import ReleaseDetails
from controller.store.db import make_engine, migrate
from controller.store.releases import ReleaseStore
from tests.support.alertmanager import CONFIG, AlertingPrometheus, WebhookReceiver, start_alerting
from tests.support.series_exporter import SeriesExporters

pytestmark = pytest.mark.integration
MODEL = "chat"


def releases(tmp_path) -> tuple[ReleaseStore, str, str]:
    """One release rolled back a minute ago and another model's release in canary."""
    engine = make_engine(f"sqlite:///{tmp_path / 'releases.db'}")
    migrate(engine)
    store = ReleaseStore(sessionmaker(engine, expire_on_commit=False))
    now = datetime.now(timezone.utc)
    ids = []
    for model, phase in ((MODEL, Phase.ROLLED_BACK), ("other", Phase.CANARY)):
        r = store.create(model, "2", "1", {"canary": {"steps": [10]}}, now - timedelta(minutes=3))
        store.save(r, r.evolve(phase=phase, phase_started_at=now - timedelta(minutes=1)), [], now)
        ids.append(r.id)
    return store, ids[0], ids[1]


def test_shipped_config_is_valid():
    check = subprocess.run(["amtool", "check-config", str(CONFIG)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_rollback_alert_reaches_the_receiver(tmp_path):
    store, rolled_back, canary = releases(tmp_path)
    receiver = WebhookReceiver().start()
    exporters = SeriesExporters(MODEL, rolled_back, [ReleaseDetails(store)]).start()
    am = prom = None
    try:
        am = start_alerting(tmp_path, receiver.url)        # the shipped config, fast grouping (as the demo)
        prom = AlertingPrometheus(tmp_path / "prom", alertmanager=am.url, scrape_interval_seconds=1.0).start()
        for job, targets in exporters.targets.items():
            for i, target in enumerate(targets):
                prom.add_target(target, {"job": job}, name=f"{job}-{i}")
        body = receiver.wait_for(lambda b: any(a["labels"]["alertname"] == "RelctlReleaseRolledBack"
                                               for a in b["alerts"]), timeout=90)
        with urllib.request.urlopen(f"{am.url}/api/v2/alerts", timeout=5) as resp:
            active = json.load(resp)
    finally:
        for server in (prom, am):
            if server is not None:
                server.stop()
        exporters.stop()
        receiver.stop()
    assert body["status"] == "firing" and body["receiver"] == "relctl-tickets"
    [alert] = [a for a in body["alerts"] if a["labels"]["alertname"] == "RelctlReleaseRolledBack"]
    assert {k: alert["labels"].get(k) for k in ("model", "release", "severity")} == {
        "model": MODEL, "release": rolled_back, "severity": "ticket"}
    assert alert["annotations"]["summary"] == f"Release {rolled_back} of {MODEL} rolled back version 2"
    assert not [a for b in receiver.received for a in b["alerts"] if a["labels"].get("release") == canary]
    assert any(a["labels"].get("release") == rolled_back for a in active)
