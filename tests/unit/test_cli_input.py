"""CLI input: versions checked before any call, policies sent by name or read locally."""
import time

import httpx
import pytest

from controller import cli
from tests.unit.test_policies_loader import LAUGHS


@pytest.mark.parametrize("argv", [["release", "create", "m", "01"], ["release", "create", "m", "\u0663"],
                                  ["quantize", "m", "1" * 50]])
def test_non_canonical_version_is_a_usage_error(argv, capsys, monkeypatch):
    monkeypatch.setattr(httpx, "request", lambda *a, **k: pytest.fail("no call may be made"))
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2 and "argument version" in capsys.readouterr().err


@pytest.fixture
def sent(monkeypatch):
    bodies = []

    def fake_request(method, url, json=None, **kw):
        bodies.append(json)
        return httpx.Response(201, json={"id": "rel-1"}, request=httpx.Request(method, url))
    monkeypatch.setattr(httpx, "request", fake_request)
    return bodies


def test_policy_name_is_sent_as_a_name_and_a_file_is_sent_inline(sent, tmp_path):
    assert cli.main(["release", "create", "m", "2", "--policy", "demo"]) == 0
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nshadow: {duration_seconds: 0}\n")
    assert cli.main(["release", "create", "m", "2", "--policy", str(path)]) == 0
    assert sent[0] == {"model": "m", "version": "2", "policy": "demo"}
    assert sent[1]["policy"]["name"] == "mine" and sent[1]["policy"]["shadow"]["duration_seconds"] == 0


def test_policy_validate_refuses_an_alias_bomb_fast(tmp_path, capsys):
    path = tmp_path / "laughs.yaml"
    path.write_text(LAUGHS)
    started = time.perf_counter()
    assert cli.main(["policy", "validate", str(path)]) == 1
    assert time.perf_counter() - started < 2
    assert "aliases expand to more than" in capsys.readouterr().err
