"""`relctl audit verify` on a real SQLite store: exit 0 on intact chains, 1 naming the first break."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from controller.cli import main
from controller.store.db import make_engine, migrate
from tests.unit.test_store_chain import add_release, allow_tampering, append


@pytest.fixture
def url(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    engine = make_engine(url)
    migrate(engine)
    add_release(engine, "rel-a")
    append(engine, "rel-a", "one", "two", "three")
    engine.dispose()
    return url


def test_intact_chains_exit_zero_with_a_report(url, capsys):
    assert main(["audit", "verify", "--db-url", url]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["events"]["rows"] == 3


def test_a_break_exits_one_naming_release_and_seq(url, capsys):
    engine = make_engine(url)
    with engine.begin() as conn:
        allow_tampering(conn)
        conn.execute(text("UPDATE events SET reason = 'forged' WHERE seq = 2"))
    engine.dispose()
    assert main(["audit", "verify", "--db-url", url, "--since", "2000-01-01T00:00:00"]) == 1
    err = capsys.readouterr().err
    assert "events chain rel-a at seq 2" in err and "changed" in err


def test_bad_input_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["audit", "verify", "--db-url", "sqlite://", "--since", "yesterday"])
    assert exit_.value.code == 2 and "--since: not an ISO 8601 time" in capsys.readouterr().err
    assert main(["audit", "verify", "--db-url", f"sqlite:///{tmp_path / 'empty.db'}"]) == 1
    assert "cannot read the store" in capsys.readouterr().err
