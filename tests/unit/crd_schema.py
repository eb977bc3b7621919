"""A published CustomResourceDefinition's OpenAPI v3 schema as a JSON Schema that `jsonschema` runs.

Structural CRD schemas are almost JSON Schema; what differs is what the API server does on its own:
- `x-kubernetes-int-or-string` -> an integer or a string;
- `x-kubernetes-list-type: set|map` -> `uniqueItems` (a map list's per-key uniqueness is not
  expressible; whole duplicate entries are still caught);
- `x-kubernetes-preserve-unknown-fields` -> unknown fields kept; every other object that lists
  its properties rejects unknown ones (the API server would silently prune them);
- `x-kubernetes-validations` (CEL) and the other `x-kubernetes-*` keys are dropped: CEL is not
  evaluated here; `kubectl apply --dry-run=server` on a cluster does that.
"""
from __future__ import annotations

from pathlib import Path

import yaml


def crd_version_schema(crd_path: Path, version: str) -> dict:
    """The JSON Schema of one served version of the CRD in `crd_path`."""
    crd = yaml.safe_load(crd_path.read_text())
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            schema = to_json_schema(v["schema"]["openAPIV3Schema"])
            # metadata is `type: object` in every CRD; the API server checks it as ObjectMeta
            schema["properties"]["metadata"] = {"type": "object"}
            return schema
    raise KeyError(f"{crd_path.name} serves no version {version!r}")


def to_json_schema(node: dict) -> dict:
    out: dict = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = to_json_schema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [to_json_schema(sub) for sub in value]
        elif key == "x-kubernetes-list-type" and value in ("set", "map"):
            out["uniqueItems"] = True
        elif key.startswith("x-kubernetes-") or key == "nullable":
            continue
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if (out.get("type") == "object" and "properties" in out and "additionalProperties" not in out
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out
