"""Request and response bodies of the REST API, with the input rules they enforce.

Versions must be MLflow's canonical form, policies a name or an inline mapping (never a
path), names free of control characters: all checked here, so a bad value is a 422 that
names its field before anything else runs.
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, WithJsonSchema

from controller.registry.versions import VERSION_PATTERN, canonical_version
from policies.loader import NAME_PATTERN, is_policy_name

# No control characters (they end up in logs, URLs and registry filters).
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")]
ReleaseId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
Version = Annotated[str, AfterValidator(canonical_version),
                    WithJsonSchema({"type": "string", "pattern": VERSION_PATTERN, "examples": ["3"],
                                    "description": "MLflow version: a positive integer, ASCII digits, "
                                                   "no leading zeros"})]


def _policy_ref(value: Any) -> Any:
    if isinstance(value, str) and not is_policy_name(value):
        raise ValueError("policy must be a policy name (letters, digits, '-' or '_', at most 64) "
                         "or an inline policy object; file paths are not accepted")
    return value


PolicyRef = Annotated[str | dict[str, Any] | None, BeforeValidator(_policy_ref), WithJsonSchema({
    "anyOf": [{"type": "string", "pattern": NAME_PATTERN, "description": "a built-in or configured policy name"},
              {"type": "object", "description": "an inline policy (fields of policies/schema.py)"},
              {"type": "null"}]})]


class CreateRelease(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)   # strict: no 0 for false, no "1" for 1
    model: ModelName
    version: Version
    policy: PolicyRef = Field(None, description="built-in or configured policy name, or an inline policy; "
                                                "default: `default`")


class FaultBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    error_rate: float = Field(0.0, ge=0, le=1, allow_inf_nan=False)
    latency_ms: float = Field(0.0, ge=0, le=600_000, allow_inf_nan=False)
    truncate: bool = False


class FaultOut(FaultBody):
    model: str
    track: str


class ReleaseOut(BaseModel):
    id: str
    model: str
    candidate_version: str
    stable_version: str | None
    phase: str
    step_index: int
    phase_started_at: str
    paused_from: str | None
    requested_action: str | None
    reason: str
    status: dict[str, Any]
    # The split the stored phase asks the router for (applied by the tick that saved it), read in
    # the same request as the phase: {"stable": %, "candidate": %, "mirror_percent": %}; null when
    # the release does not route (before deploying, after it ended).
    weights: dict[str, float] | None = None


class Health(BaseModel):
    status: str
