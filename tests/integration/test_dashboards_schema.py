"""Dashboards against Grafana's schema (grafana-foundation-sdk's typed models, offline), provisioning
files, and the alert rules: promtool accepts them and every alert has a firing test case."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2] / "dashboards"
DASHBOARDS = sorted(ROOT.glob("*.json"))
register_default_plugins()
# Annotation keys outside the dashboard kind's AnnotationQuery that Grafana reads anyway: `builtIn`
# marks its own annotations; the rest are the Prometheus data source's annotation options.
ANNOTATION_EXTRAS = {"builtIn", "useValueForTime", "titleFormat", "textFormat", "tagKeys", "step"}


def dropped_keys(original, decoded, path="") -> list[str]:
    """Keys of `original` that Grafana's typed model does not know (lost in the round trip)."""
    if isinstance(original, dict):
        return [p for k, v in original.items()
                for p in ([f"{path}/{k}"] if not isinstance(decoded, dict) or k not in decoded
                          else dropped_keys(v, decoded[k], f"{path}/{k}"))]
    if isinstance(original, list) and isinstance(decoded, list) and len(original) == len(decoded):
        return [p for i, (a, b) in enumerate(zip(original, decoded)) for p in dropped_keys(a, b, f"{path}[{i}]")]
    return []


def test_there_are_release_pool_and_gateway_dashboards():
    assert {p.stem for p in DASHBOARDS} >= {"relctl-release", "relctl-pool", "relctl-gateway"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_round_trips_through_grafanas_types(path):
    doc = json.loads(path.read_text())
    decoded = json.loads(json.dumps(Dashboard.from_json(doc), cls=JSONEncoder))
    dropped = [k for k in dropped_keys(doc, decoded)
               if not (k.startswith("/annotations/list[") and k.rsplit("/", 1)[1] in ANNOTATION_EXTRAS)]
    assert dropped == []
    assert decoded["uid"] == doc["uid"] and decoded["schemaVersion"] >= 36


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_panels_are_placed_and_query_prometheus(path):
    doc = json.loads(path.read_text())
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for p in doc["panels"]:
        assert {"x", "y", "w", "h"} <= p["gridPos"].keys() and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        if p["type"] == "row":
            continue
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["expr"].strip() and t["refId"] and p["datasource"]["type"] == "prometheus", p["title"]


def test_provisioning_files():
    providers = yaml.safe_load((ROOT / "provisioning" / "dashboards" / "relctl.yml").read_text())["providers"]
    assert providers[0]["type"] == "file" and providers[0]["options"]["path"]
    sources = yaml.safe_load((ROOT / "provisioning" / "datasources" / "relctl.yml").read_text())["datasources"]
    assert {s["type"] for s in sources} == {"prometheus", "alertmanager"}


def rule_files() -> list[Path]:
    return sorted((ROOT / "rules").glob("*.yml"))


def test_promtool_accepts_rules_and_their_tests():
    check = subprocess.run(["promtool", "check", "rules", *map(str, rule_files())], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    tests = sorted(p.name for p in (ROOT / "tests").glob("*_test.yml"))
    run = subprocess.run(["promtool", "test", "rules", *tests], cwd=ROOT / "tests", capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_alert_has_a_firing_promtool_case():
    alerts = {r["alert"] for f in rule_files() for g in yaml.safe_load(f.read_text())["groups"]
              for r in g["rules"] if "alert" in r}
    fired = {case["alertname"] for f in (ROOT / "tests").glob("*_test.yml")
             for t in yaml.safe_load(f.read_text())["tests"] for case in t.get("alert_rule_test", [])
             if case.get("exp_alerts")}
    assert alerts and alerts <= fired, alerts - fired
