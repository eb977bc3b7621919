"""Every dashboard query, annotation, variable and rule expression runs against a real Prometheus
(Debian 2.42) scraping exporters on 127.0.0.1 with the gateway's real metrics, vLLM's names, DCGM's
names and the controller's release series; each must parse and return a number.

Prometheus 2.42 stores the `vllm:*` names that prometheus_client 0.26 exposes as `vllm_*` (checked
here): the dashboards and rules match both with `{__name__=~"vllm[:_]…"}`.
"""
from __future__ import annotations

import json
import math
import re
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from sqlalchemy.orm import sessionmaker

from controller.domain.phases import Phase
from controller.report.metrics import ReleaseDetails
from controller.store.db import make_engine, migrate
from controller.store.releases import ReleaseStore
from tests.support.prometheus import PrometheusServer
from tests.support.series_exporter import SeriesExporters

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2] / "dashboards"
DATA = Path(__file__).resolve().parents[1] / "unit" / "data"
MODEL = "chat"
# Grafana replaces a multi-value variable set to All with a regex of every value; ".+" selects the same.
VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")


def canary_release_store(tmp_path) -> tuple[ReleaseStore, str]:
    engine = make_engine(f"sqlite:///{tmp_path / 'releases.db'}")
    migrate(engine)
    store = ReleaseStore(sessionmaker(engine, expire_on_commit=False))
    now = datetime.now(timezone.utc)
    r = store.create(MODEL, "2", "1", {"canary": {"steps": [10, 40]}}, now - timedelta(minutes=5))
    verdict = json.loads((DATA / "release_succeeded.json").read_text())["release"]["status"]["verdict"]
    new = r.evolve(phase=Phase.CANARY, step_index=1, phase_started_at=now - timedelta(minutes=1),
                   status={"verdict": verdict})
    store.save(r, new, [], now)
    return store, r.id


@pytest.fixture(scope="module")
def prom(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dash-queries")
    store, release_id = canary_release_store(tmp)
    exporters = SeriesExporters(MODEL, release_id, [ReleaseDetails(store)]).start()
    server = PrometheusServer(tmp / "prom", scrape_interval_seconds=1.0).start()
    try:
        for job, targets in exporters.targets.items():
            for i, target in enumerate(targets):
                server.add_target(target, {"job": job}, name=f"{job}-{i}")
        # two scrapes of every source: rate() and histogram_quantile() have something to work on
        for probe in ('rate(relctl_requests_total[1m])', 'rate({__name__=~"vllm[:_]generation_tokens_total"}[1m])',
                      'relctl_judge_e_value', 'DCGM_FI_DEV_GPU_UTIL'):
            server.wait_for(probe, timeout=60)
        yield server
    finally:
        server.stop()
        exporters.stop()


def substitute(expr: str) -> str:
    return VARIABLE.sub(".+", expr)


def instant(prom: PrometheusServer, expr: str) -> dict:
    qs = urllib.parse.urlencode({"query": substitute(expr)})
    try:
        with urllib.request.urlopen(f"{prom.url}/api/v1/query?{qs}", timeout=10) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:      # 400: the expression does not parse
        return json.load(exc)


def numbers(body: dict) -> list[float]:
    return [float(r["value"][1]) for r in body["data"]["result"]]


def panel_queries() -> list[tuple[str, str]]:
    out = []
    for path in sorted(ROOT.glob("*.json")):
        doc = json.loads(path.read_text())
        out += [(f"{path.stem}: {p['title']} [{t['refId']}]", t["expr"])
                for p in doc["panels"] if p["type"] != "row" for t in p["targets"]]
        annotations = doc.get("annotations", {}).get("list", [])
        out += [(f"{path.stem}: annotation {a['name']}", a["expr"]) for a in annotations if a.get("expr")]
    return out


def variable_queries() -> list[tuple[str, str, str]]:
    """label_values(SELECTOR, LABEL) of each dashboard variable."""
    out = []
    for path in sorted(ROOT.glob("*.json")):
        for v in json.loads(path.read_text())["templating"]["list"]:
            if v["type"] == "query":
                m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", v["query"]["query"])
                assert m, f"{path.stem}: variable {v['name']} is not label_values(selector, label)"
                out.append((f"{path.stem}: ${v['name']}", m.group(1), m.group(2)))
    return out


def rule_expressions() -> list[tuple[str, str, bool]]:
    out = []
    for path in sorted((ROOT / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            out += [(r.get("record") or r["alert"], r["expr"], "record" in r) for r in group["rules"]]
    return out


@pytest.mark.parametrize(("name", "expr"), panel_queries(), ids=[n for n, _ in panel_queries()])
def test_panel_query_parses_and_returns_numbers(prom, name, expr):
    body = instant(prom, expr)
    assert body["status"] == "success", f"{name}: {body.get('error')}"
    values = numbers(body)
    assert values, f"{name}: no data for {substitute(expr)}"
    assert any(math.isfinite(v) for v in values), f"{name}: only NaN/Inf {values}"


@pytest.mark.parametrize(("name", "selector", "label"), variable_queries(), ids=[n for n, *_ in variable_queries()])
def test_variable_lists_values(prom, name, selector, label):
    qs = urllib.parse.urlencode({"match[]": substitute(selector)})
    with urllib.request.urlopen(f"{prom.url}/api/v1/label/{label}/values?{qs}", timeout=10) as resp:
        assert json.load(resp)["data"], name


@pytest.mark.parametrize(("name", "expr", "recording"), rule_expressions(), ids=[n for n, *_ in rule_expressions()])
def test_rule_expression_parses(prom, name, expr, recording):
    body = instant(prom, expr)
    assert body["status"] == "success", f"{name}: {body.get('error')}"
    if recording:
        assert numbers(body), f"{name}: no data"


def test_vllm_names_are_stored_with_underscores_here(prom):
    assert prom.query("vllm_num_requests_running") and not prom.query('{__name__="vllm:num_requests_running"}')
