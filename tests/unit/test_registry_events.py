from datetime import datetime, timezone

import pytest

from controller.registry.conventions import TAG_ACTION, TAG_PARENT_VERSION
from controller.registry.events import PayloadError, parse_webhook_payload, poll_events
from controller.registry.types import EventKind, RegistryEvent, VersionInfo


def payload(entity, action, **data):
    return {"entity": entity, "action": action, "timestamp": "2026-01-01T00:00:00+00:00",
            "data": data}


@pytest.mark.parametrize("body, expected", [
    (payload("model_version", "created", name="m", version="3", source="models:/x", tags={}),
     RegistryEvent(EventKind.VERSION_CREATED, "m", "3")),
    (payload("model_version_alias", "created", name="m", alias="candidate", version="3"),
     RegistryEvent(EventKind.ALIAS_SET, "m", "3", alias="candidate")),
    (payload("model_version_alias", "deleted", name="m", alias="candidate"),
     RegistryEvent(EventKind.ALIAS_DELETED, "m", None, alias="candidate")),
    (payload("model_version_tag", "set", name="m", version=3, key=TAG_ACTION, value="abort"),
     RegistryEvent(EventKind.TAG_SET, "m", "3", tag_key=TAG_ACTION, tag_value="abort")),
    (payload("model_version_tag", "deleted", name="m", version="3", key="k"),
     RegistryEvent(EventKind.TAG_DELETED, "m", "3", tag_key="k")),
])
def test_webhook_payloads_become_events(body, expected):
    assert parse_webhook_payload(body) == expected


@pytest.mark.parametrize("body", [
    payload("registered_model", "created", name="m", tags={}),
    payload("prompt", "created", name="p"),
    payload("model_version", "created", name="m", version="4",
            tags={TAG_PARENT_VERSION: "3"}),
])
def test_ignored_payloads_give_none(body):
    assert parse_webhook_payload(body) is None


@pytest.mark.parametrize("body, message", [
    ([1, 2], "JSON object"),
    ({"action": "created", "data": {}}, "'entity'"),
    ({"entity": "model_version", "action": "created"}, "'data'"),
    (payload("model_version", "created", name="m"), "lacks version"),
    (payload("model_version_tag", "set", name="m", version="1", key="k"), "lacks value"),
    (payload("model_version_alias", "created", name="", alias="a", version="1"),
     "lacks name"),
])
def test_malformed_payloads_are_rejected_with_reason(body, message):
    with pytest.raises(PayloadError, match=message):
        parse_webhook_payload(body)


def info(version, tags=None, aliases=()):
    return VersionInfo("m", version, f"models:/{version}", tags or {}, tuple(aliases),
                       datetime(2026, 1, 1, tzinfo=timezone.utc))


def test_poll_reports_only_unseen_versions_in_numeric_order():
    events = poll_events("m", [info("10"), info("2"), info("1")], seen={"1"})
    assert [(e.kind, e.version) for e in events] == [
        (EventKind.VERSION_CREATED, "2"), (EventKind.VERSION_CREATED, "10")]


def test_poll_repeats_candidate_alias_and_action_tag_while_set():
    versions = [info("1", aliases=["champion"]), info("2", aliases=["candidate"]),
                info("3", tags={TAG_ACTION: "promote"}), info("4", tags={TAG_ACTION: "maybe"})]
    for _ in range(2):
        events = poll_events("m", versions, seen={"1", "2", "3", "4"})
        assert events == [
            RegistryEvent(EventKind.ALIAS_SET, "m", "2", alias="candidate"),
            RegistryEvent(EventKind.TAG_SET, "m", "3", tag_key=TAG_ACTION,
                          tag_value="promote")]


def test_poll_never_reports_derived_builds_as_new():
    assert poll_events("m", [info("5", tags={TAG_PARENT_VERSION: "4"})], seen=set()) == []
