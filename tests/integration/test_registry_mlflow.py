"""MlflowRegistry and the webhook receiver against a real `mlflow server`."""
import json
import threading
import time
import urllib.request

import pytest
import uvicorn
from fastapi import FastAPI

from controller.ports import group_alive
from controller.registry import conventions as c
from controller.registry.mlflow_registry import MlflowRegistry
from controller.registry.types import EventKind, RegistryError, RegistryEvent
from controller.registry.webhook import WEBHOOK_PATH, ensure_webhook, webhook_router
from tests.support.mlflow_server import MlflowServer, free_port, mlflow_server  # noqa: F401

pytestmark = pytest.mark.integration


def make_checkpoint(folder, marker):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "marker": marker}))
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 4)
    (folder / "tokenizer").mkdir()
    (folder / "tokenizer" / "vocab.json").write_text("{}")
    return folder


def without_manifest(tags):
    """The tags the test set; registration adds the manifest's (test_registry_integrity.py)."""
    return {k: v for k, v in tags.items() if not k.startswith("relctl.manifest_")}


@pytest.fixture(scope="module")
def registry(mlflow_server):  # noqa: F811
    return MlflowRegistry(mlflow_server.url)


def test_register_versions_tags_aliases_and_download(registry, tmp_path):
    name = "tiny-registry"
    assert not registry.model_exists(name)
    v1 = registry.register_checkpoint(name, make_checkpoint(tmp_path / "v1", "one"),
                                      description="base")
    lineage = c.lineage_tags(v1, "awq-w4-g128", {"ppl_delta_pct": 1.5})
    v2 = registry.register_checkpoint(name, make_checkpoint(tmp_path / "v2", "two"),
                                      tags=lineage)
    assert (v1, v2) == ("1", "2") and registry.model_exists(name)

    info = registry.get_version(name, v2)
    assert info.source.startswith("models:/m-") and without_manifest(info.tags) == lineage
    assert info.created_at.tzinfo is not None
    assert [v.version for v in registry.list_versions(name)] == ["1", "2"]
    assert [v.version for v in registry.find_versions_by_tag(
        name, c.TAG_PARENT_VERSION, v1)] == ["2"]

    registry.set_alias(name, c.ALIAS_CHAMPION, v1)
    assert registry.get_alias(name, c.ALIAS_CHAMPION) == "1"
    assert registry.get_version(name, v1).aliases == (c.ALIAS_CHAMPION,)
    registry.set_alias(name, c.ALIAS_CHAMPION, v2)  # moving an alias
    assert registry.get_alias(name, c.ALIAS_CHAMPION) == "2"
    registry.delete_alias(name, c.ALIAS_CHAMPION)
    registry.delete_alias(name, c.ALIAS_CHAMPION)  # idempotent
    assert registry.get_alias(name, c.ALIAS_CHAMPION) is None

    registry.set_tags(name, v1, c.status_tags("canary", "r-1"))
    registry.delete_tag(name, v1, c.TAG_RELEASE_ID)
    registry.delete_tag(name, v1, c.TAG_RELEASE_ID)  # idempotent
    assert without_manifest(registry.get_version(name, v1).tags) == {c.TAG_PHASE: "canary"}

    folder = registry.download(name, v2, tmp_path / "cache")
    assert json.loads((folder / "config.json").read_text())["marker"] == "two"
    assert (folder / "model.safetensors").read_bytes() == bytes(range(256)) * 4
    assert (folder / "tokenizer" / "vocab.json").is_file()
    # A second download is served from the cache: even a dead server does not matter.
    offline = MlflowRegistry(f"http://127.0.0.1:{free_port()}")
    assert offline.download(name, v2, tmp_path / "cache") == folder


def test_poll_reports_new_versions_candidate_and_actions(registry, tmp_path):
    name = "tiny-poll"
    v1 = registry.register_checkpoint(name, make_checkpoint(tmp_path / "a", "a"))
    assert registry.poll(name, set()) == [RegistryEvent(EventKind.VERSION_CREATED, name, v1)]
    assert registry.poll(name, {v1}) == []

    v2 = registry.register_checkpoint(name, make_checkpoint(tmp_path / "b", "b"))
    registry.register_checkpoint(name, make_checkpoint(tmp_path / "q", "q"),
                                 tags=c.lineage_tags(v2, "awq-w4-g128"))  # derived: silent
    registry.set_alias(name, c.ALIAS_CANDIDATE, v2)
    registry.set_tags(name, v1, {c.TAG_ACTION: c.ACTION_ABORT})
    assert registry.poll(name, {v1}) == [
        RegistryEvent(EventKind.TAG_SET, name, v1, tag_key=c.TAG_ACTION,
                      tag_value=c.ACTION_ABORT),
        RegistryEvent(EventKind.VERSION_CREATED, name, v2),
        RegistryEvent(EventKind.ALIAS_SET, name, v2, alias=c.ALIAS_CANDIDATE),
    ]


def test_unknown_model_and_version_give_clear_errors(registry, tmp_path):
    with pytest.raises(RegistryError, match="unknown model 'no-such-model'"):
        registry.get_version("no-such-model", "1")
    with pytest.raises(RegistryError, match="unknown model 'no-such-model'"):
        registry.poll("no-such-model", set())
    registry.register_checkpoint("tiny-one", make_checkpoint(tmp_path / "x", "x"))
    with pytest.raises(RegistryError, match="model 'tiny-one' has no version 7"):
        registry.get_version("tiny-one", "7")
    with pytest.raises(RegistryError, match="model 'tiny-one' has no version 7"):
        registry.set_alias("tiny-one", c.ALIAS_CANDIDATE, "7")
    with pytest.raises(RegistryError, match="has no version 7"):
        registry.download("tiny-one", "7", tmp_path / "cache")
    assert not (tmp_path / "cache" / "tiny-one" / "v7").exists()


def ui_set_alias(url, name, alias, version):
    """The request the MLflow UI sends when a user sets an alias."""
    body = json.dumps({"name": name, "alias": alias, "version": version}).encode()
    req = urllib.request.Request(f"{url}/ajax-api/2.0/mlflow/registered-models/alias",
                                 data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


class Receiver:
    """uvicorn on a free port serving the webhook router; collects the events."""

    def __init__(self, secret):
        self.events, self.statuses, self.port = [], [], free_port()
        app = FastAPI()
        app.include_router(webhook_router(secret, self.events.append))

        @app.middleware("http")
        async def record_status(request, call_next):
            response = await call_next(request)
            self.statuses.append(response.status_code)
            return response
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)

    def wait_for(self, predicate, timeout_s=20.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self.events):
                return
            time.sleep(0.2)
        raise AssertionError(f"no matching webhook event within {timeout_s} s: {self.events}")


def test_real_webhook_delivery_from_mlflow(registry, mlflow_server, tmp_path):  # noqa: F811
    """Uses the fixture's 1 s webhook cache; with MLflow's default (60 s) the first
    delivery to a new webhook can take a minute."""
    name = "tiny-webhook"
    v1 = registry.register_checkpoint(name, make_checkpoint(tmp_path / "a", "a"))
    with Receiver("hook-secret") as receiver:
        url = f"http://127.0.0.1:{receiver.port}{WEBHOOK_PATH}"
        hook_id = ensure_webhook(mlflow_server.url, url, "hook-secret")
        assert ensure_webhook(mlflow_server.url, url, "hook-secret") == hook_id  # idempotent
        time.sleep(1.5)  # let the server's webhook cache expire
        ui_set_alias(mlflow_server.url, name, c.ALIAS_CANDIDATE, v1)  # as a user would
        registry.set_tags(name, v1, {c.TAG_ACTION: c.ACTION_PROMOTE})
        v2 = registry.register_checkpoint(name, make_checkpoint(tmp_path / "b", "b"))
        expected = [
            RegistryEvent(EventKind.ALIAS_SET, name, v1, alias=c.ALIAS_CANDIDATE),
            RegistryEvent(EventKind.TAG_SET, name, v1, tag_key=c.TAG_ACTION,
                          tag_value=c.ACTION_PROMOTE),
            RegistryEvent(EventKind.VERSION_CREATED, name, v2),
        ]
        receiver.wait_for(lambda events: all(e in events for e in expected))
        # A receiver with another secret rejects MLflow's deliveries (401), so nothing lands.
    with Receiver("other-secret") as wrong:
        ensure_webhook(mlflow_server.url, f"http://127.0.0.1:{wrong.port}{WEBHOOK_PATH}",
                       "hook-secret")
        time.sleep(1.5)
        registry.set_alias(name, c.ALIAS_CHAMPION, v1)
        wrong.wait_for(lambda _: 401 in wrong.statuses)
        assert wrong.events == [] and 200 not in wrong.statuses


def test_server_stops_cleanly_and_keeps_its_webhook_key(tmp_path):
    server = MlflowServer(tmp_path / "srv").start()
    key = (tmp_path / "srv" / "webhook-encryption.key").read_text()
    pid = server._proc.pid
    server.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{server.url}/health", timeout=2)
    assert not group_alive(pid)  # the uvicorn worker went too
    assert MlflowServer(tmp_path / "srv")._encryption_key() == key
