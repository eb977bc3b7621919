"""Test helper: custom resources checked against the upstream projects' OpenAPI schemas as published on
npm by kubernetes-models (tests/k8s_schemas; `make setup` installs them with `npm ci`).

Those validators check types, enums, bounds, patterns and required fields; they accept unknown fields and
do not run the CRDs' CEL rules — relctl's own schemas under tests/data/crds cover both.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

SCHEMAS_DIR = Path(__file__).parents[1] / "k8s_schemas"


class PublishedSchemasMissing(RuntimeError):
    pass


def published_schema_errors(objs: list[dict]) -> list[str | None]:
    """Per object: None when valid, else the validator's errors (one Node.js run for all)."""
    node = shutil.which("node")
    if not node or not (SCHEMAS_DIR / "node_modules" / "@kubernetes-models").is_dir():
        raise PublishedSchemasMissing(f"Node.js or the schema packages are missing; run `make setup` "
                                      f"(it runs `npm ci --prefix {SCHEMAS_DIR}`)")
    done = subprocess.run([node, str(SCHEMAS_DIR / "validate.mjs")], input=json.dumps(objs), capture_output=True,
                          text=True, timeout=120, check=False)
    if done.returncode:
        raise RuntimeError(f"validate.mjs failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)
