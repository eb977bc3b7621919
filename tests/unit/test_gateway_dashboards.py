"""Dashboards and rules only use metrics the gateway exports, and promtool accepts the rules."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from controller.gateway.metrics import GatewayMetrics

ROOT = Path(__file__).resolve().parents[2] / "dashboards"
NAME = re.compile(r"\brelctl_[a-z_]+")


def exported_names() -> set[str]:
    names = set()
    for family in GatewayMetrics().registry.collect():
        suffixes = ("_bucket", "_sum", "_count") if family.type == "histogram" else ("_total",)
        names |= {family.name + s for s in suffixes} | {family.name}
    return names


def test_dashboard_queries_use_exported_metric_names():
    dash = json.loads((ROOT / "relctl-gateway.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {n for e in exprs for n in NAME.findall(e)}
    assert used and used <= exported_names(), used - exported_names()


def test_rules_use_exported_metric_names():
    text = (ROOT / "rules" / "relctl-gateway.rules.yml").read_text()
    used = set(NAME.findall(text))
    assert used and used <= exported_names(), used - exported_names()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing: apt-get install prometheus")
def test_promtool_checks_and_unit_tests_pass():
    rules = ROOT / "rules" / "relctl-gateway.rules.yml"
    check = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    tests = subprocess.run(["promtool", "test", "rules", "relctl-gateway.rules_test.yml"],
                           cwd=ROOT / "tests", capture_output=True, text=True)
    assert tests.returncode == 0, tests.stdout + tests.stderr
