"""The release series the dashboards and alerts read, from a real SQLite store."""
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import sessionmaker

from controller.domain.phases import Phase
from controller.report.metrics import ReleaseDetails
from controller.store.db import make_engine, migrate
from controller.store.releases import ReleaseStore

T0 = datetime(2026, 12, 2, 18, 0, tzinfo=timezone.utc)
RECORDED = json.loads((Path(__file__).parent / "data" / "release_rolled_back.json").read_text())
VERDICT = RECORDED["release"]["status"]["verdict"]


@pytest.fixture
def store(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    migrate(engine)
    return ReleaseStore(sessionmaker(engine, expire_on_commit=False))


def move(store, r, phase, at, step=0, status=None):
    new = r.evolve(phase=phase, step_index=step, phase_started_at=at, status=status or r.status)
    return store.save(r, new, [], at)


def samples(store, now):
    reg = CollectorRegistry()
    reg.register(ReleaseDetails(store, clock=lambda: now))
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(generate_latest(reg).decode()) for s in f.samples}


def test_active_canary_release_series(store):
    r = store.create("chat", "2", "1", {"canary": {"steps": [10, 40]}}, T0)
    move(store, r, Phase.CANARY, T0 + timedelta(seconds=30), step=1, status={"verdict": VERDICT})
    got = samples(store, T0 + timedelta(minutes=1))
    labels = (("model", "chat"), ("release", r.id))
    assert got[("relctl_release_info", (("candidate_version", "2"),) + labels[:1] + (("phase", "canary"),)
                + labels[1:] + (("stable_version", "1"),))] == 1
    assert got[("relctl_release_candidate_weight_percent", labels)] == 40
    assert got[("relctl_release_phase_started_timestamp_seconds", labels[:1] + (("phase", "canary"),) + labels[1:])] \
        == (T0 + timedelta(seconds=30)).timestamp()
    e = got[("relctl_judge_e_value", labels + (("test", "errors"),))]
    assert e >= got[("relctl_judge_threshold", labels + (("test", "errors"),))] > 1


def test_finished_releases_stay_an_hour(store):
    r = store.create("chat", "2", "1", {}, T0)
    move(store, r, Phase.ROLLED_BACK, T0)
    assert any(k[0] == "relctl_release_info" and ("phase", "rolled_back") in k[1]
               for k in samples(store, T0 + timedelta(minutes=59)))
    assert not any(k[0] == "relctl_release_info" for k in samples(store, T0 + timedelta(minutes=61)))
