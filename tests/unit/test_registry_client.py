"""MlflowRegistry input checks and fail-fast behaviour: no server needed."""
import time

import pytest

from controller.registry.checkpoint_files import cache_path, check_checkpoint_dir
from controller.registry.mlflow_registry import MlflowRegistry
from controller.registry.mlflow_server import free_port
from controller.registry.types import RegistryError
from controller.registry.webhook import ensure_webhook


@pytest.fixture(scope="module")
def dead_registry():
    # A port nobody listens on: every call must fail fast, never hang.
    return MlflowRegistry(f"http://127.0.0.1:{free_port()}")


@pytest.mark.parametrize("call, message", [
    (lambda r: r.get_version("", "1"), "model name"),
    (lambda r: r.get_version("m'x", "1"), "quotes"),
    (lambda r: r.get_version("m", "latest"), "positive integer"),
    (lambda r: r.get_version("m", "0"), "positive integer"),
    (lambda r: r.set_alias("m", "v3", "1"), "reserved"),
    (lambda r: r.set_alias("m", "bad alias", "1"), "alias must be"),
    (lambda r: r.set_tags("m", "1", {"": "x"}), "tag keys"),
    (lambda r: r.find_versions_by_tag("m", "k", "it's"), "single quote"),
])
def test_bad_input_is_refused_before_any_call(dead_registry, call, message):
    with pytest.raises(RegistryError, match=message):
        call(dead_registry)


def test_unreachable_server_fails_fast_with_its_uri(dead_registry):
    started = time.monotonic()
    with pytest.raises(RegistryError, match=r"MLflow at http://127\.0\.0\.1:\d+"):
        dead_registry.list_versions("m")
    assert time.monotonic() - started < 10


def test_ensure_webhook_fails_fast_when_server_is_down(dead_registry):
    with pytest.raises(RegistryError, match="setting up webhook"):
        ensure_webhook(dead_registry.uri, "http://127.0.0.1:1/webhooks/mlflow", "s")


def test_not_a_tracking_uri_is_refused():
    with pytest.raises(RegistryError, match="not an MLflow tracking URI"):
        MlflowRegistry("127.0.0.1:5000")


def test_checkpoint_folder_needs_config_json(tmp_path, dead_registry):
    with pytest.raises(RegistryError, match="does not exist"):
        check_checkpoint_dir(tmp_path / "missing")
    with pytest.raises(RegistryError, match="no config.json"):
        dead_registry.register_checkpoint("m", tmp_path)


def test_cache_path_is_safe_for_odd_model_names(tmp_path):
    assert cache_path(tmp_path, "org/tiny llama", "3") == tmp_path / "org_tiny_llama" / "v3"


def test_credentials_in_the_uri_never_reach_the_error_message():
    registry = MlflowRegistry(f"http://relctl:hunter2@127.0.0.1:{free_port()}")
    with pytest.raises(RegistryError) as err:
        registry.list_versions("m")
    assert "hunter2" not in str(err.value) and "***@127.0.0.1" in str(err.value)


def _folder(path, marker):
    path.mkdir(parents=True)
    (path / "config.json").write_text(marker)
    return path


def test_publish_replaces_an_interrupted_download_but_keeps_a_finished_one(tmp_path):
    from controller.registry.checkpoint_files import COMPLETE_MARKER, _publish, is_complete
    target = _folder(tmp_path / "v1", "half")  # no marker: interrupted earlier
    fresh = _folder(tmp_path / "new", "new")
    (fresh / COMPLETE_MARKER).write_text("ok")
    _publish(fresh, target)
    assert is_complete(target) and (target / "config.json").read_text() == "new"
    racer = _folder(tmp_path / "racer", "racer")  # a concurrent download finishing second
    (racer / "extra").write_text("x")
    _publish(racer, target)
    assert (target / "config.json").read_text() == "new"
