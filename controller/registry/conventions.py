"""Names relctl reads and writes in MLflow, so no caller hard-codes strings.

Users drive releases from MLflow: alias `candidate` starts one, tag `relctl.action`
promotes or aborts it; relctl reports back through `relctl.*` tags and the
`champion` / `challenger` aliases.
"""
from __future__ import annotations

from collections.abc import Mapping

from controller.registry.types import EventKind, RegistryEvent

ALIAS_CHAMPION = "champion"      # serving 100 %
ALIAS_CHALLENGER = "challenger"  # under rollout
ALIAS_CANDIDATE = "candidate"    # set by a user to start a release

TAG_ACTION = "relctl.action"
ACTION_PROMOTE = "promote"
ACTION_ABORT = "abort"
ACTIONS = frozenset({ACTION_PROMOTE, ACTION_ABORT})

TAG_PHASE = "relctl.phase"
TAG_RELEASE_ID = "relctl.release_id"
TAG_OUTCOME = "relctl.outcome"
TAG_PARENT_VERSION = "relctl.parent_version"
TAG_QUALITY_SUITE = "relctl.quality.suite"       # the evaluation suite the quality figures were scored on
TAG_QUANTIZATION = "relctl.quantization"
QUALITY_TAG_PREFIX = "relctl.quality."
# The speed gate's verdict on a build ("proceed" | "fail" | "deploy_full_precision"), and why:
# a build reused after a controller restart keeps the verdict it was registered with.
TAG_SPEED_ACTION = "relctl.speed.action"
TAG_SPEED_REASON = "relctl.speed.reason"
MAX_TAG_VALUE = 5000                     # MLflow's limit on a tag value

EXPERIMENT_NAME = "relctl-checkpoints"   # where checkpoints are logged as LoggedModels


def status_tags(phase: str, release_id: str) -> dict[str, str]:
    """Tags written on a version as its release moves through phases."""
    return {TAG_PHASE: str(phase), TAG_RELEASE_ID: str(release_id)}


def lineage_tags(parent_version: str, quantization: str,
                 quality: Mapping[str, float] | None = None) -> dict[str, str]:
    """Tags for a quantized build: its full-precision parent, the method, the figures.

    Example: lineage_tags("2", "awq-w4-g128", {"ppl_delta_pct": 1.8})
    -> {"relctl.parent_version": "2", "relctl.quantization": "awq-w4-g128",
        "relctl.quality.ppl_delta_pct": "1.8"}
    """
    if not str(parent_version).strip():
        raise ValueError("parent_version must not be empty")
    if not quantization.strip():
        raise ValueError("quantization must not be empty")
    tags = {TAG_PARENT_VERSION: str(parent_version), TAG_QUANTIZATION: quantization}
    for key, value in (quality or {}).items():
        tags[QUALITY_TAG_PREFIX + key] = repr(float(value))
    return tags


def quality_from_tags(tags: Mapping[str, str]) -> dict[str, float]:
    """Reads back the quality figures written by lineage_tags (the suite's name is not a figure)."""
    out = {}
    for key, value in tags.items():
        if key.startswith(QUALITY_TAG_PREFIX) and key != TAG_QUALITY_SUITE:
            out[key[len(QUALITY_TAG_PREFIX):]] = float(value)
    return out


def is_derived_build(tags: Mapping[str, str]) -> bool:
    """A version relctl built from another one (e.g. its AWQ build): never a new release."""
    return TAG_PARENT_VERSION in tags


def is_release_trigger(event: RegistryEvent) -> bool:
    """True for the events the controller acts on: a new version, alias `candidate`
    set, or `relctl.action` set to promote/abort."""
    if event.kind is EventKind.VERSION_CREATED:
        return True
    if event.kind is EventKind.ALIAS_SET:
        return event.alias == ALIAS_CANDIDATE
    if event.kind is EventKind.TAG_SET:
        return event.tag_key == TAG_ACTION and event.tag_value in ACTIONS
    return False


def speed_tags(action: str, reason: str) -> dict[str, str]:
    return {TAG_SPEED_ACTION: action, TAG_SPEED_REASON: reason[:MAX_TAG_VALUE]}


def speed_from_tags(tags: Mapping[str, str]) -> dict[str, str] | None:
    """The verdict written by speed_tags, or None for a build registered without a speed measurement."""
    if TAG_SPEED_ACTION not in tags:
        return None
    return {"action": tags[TAG_SPEED_ACTION], "reason": tags.get(TAG_SPEED_REASON, "")}
