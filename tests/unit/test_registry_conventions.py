import pytest

from controller.registry import conventions as c
from controller.registry.types import EventKind, RegistryEvent


def test_lineage_tags_round_trip_quality_figures():
    tags = c.lineage_tags("2", "awq-w4-g128", {"ppl_delta_pct": 1.75, "ppl": 12})
    assert tags[c.TAG_PARENT_VERSION] == "2"
    assert tags[c.TAG_QUANTIZATION] == "awq-w4-g128"
    assert c.quality_from_tags({**tags, "other": "x"}) == {"ppl_delta_pct": 1.75, "ppl": 12.0}
    assert c.is_derived_build(tags)


@pytest.mark.parametrize("parent, method", [("", "awq"), ("2", " ")])
def test_lineage_tags_refuse_empty_fields(parent, method):
    with pytest.raises(ValueError, match="must not be empty"):
        c.lineage_tags(parent, method)


def test_status_tags():
    assert c.status_tags("canary", "r-1") == {"relctl.phase": "canary",
                                              "relctl.release_id": "r-1"}


@pytest.mark.parametrize("event, expected", [
    (RegistryEvent(EventKind.VERSION_CREATED, "m", "1"), True),
    (RegistryEvent(EventKind.ALIAS_SET, "m", "1", alias="candidate"), True),
    (RegistryEvent(EventKind.ALIAS_SET, "m", "1", alias="champion"), False),
    (RegistryEvent(EventKind.TAG_SET, "m", "1", tag_key="relctl.action", tag_value="abort"),
     True),
    (RegistryEvent(EventKind.TAG_SET, "m", "1", tag_key="relctl.action", tag_value="nope"),
     False),
    (RegistryEvent(EventKind.TAG_DELETED, "m", "1", tag_key="relctl.action"), False),
])
def test_release_triggers(event, expected):
    assert c.is_release_trigger(event) is expected
