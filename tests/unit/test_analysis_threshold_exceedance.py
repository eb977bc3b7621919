"""Latency thresholds sit on the gateway's edges nearest the stable's quantiles (issue 13, part 4):
the stable's real exceedance rate over "p99" is close to 1 %, and p95 and p99 differ."""
import math

import numpy as np
from scipy.stats import lognorm

from bench.real_traffic import EDGES, _StableLatency, threshold_exceedance
from controller.analysis import latency
from controller.analysis.thresholds import fix_thresholds
from policies.analysis import AnalysisPolicy


def cumulative(over: dict[float, float]) -> dict[float, float]:
    """Cumulative buckets of 1,000 requests from each edge's exceedance rate."""
    return {le: 1000 * (1 - rate) for le, rate in over.items()} | {math.inf: 1000.0}


def test_the_edge_below_the_quantile_is_chosen_when_its_exceedance_is_nearer():
    # p99 lies between 0.4 s (2 % over it: 2x the nominal 1 %) and 0.5 s (0.2 %: 5x below).
    buckets = cumulative({0.3: 0.08, 0.4: 0.02, 0.5: 0.002, 0.6: 0.0})
    assert latency.threshold_from_buckets(buckets, 0.99) == 0.5       # snapping up: 0.2 %
    assert latency.nearest_edge(buckets, 0.99) == 0.4                  # nearer by ratio: 2 %


def test_the_edge_above_stays_when_it_is_nearer_or_the_only_one():
    assert latency.nearest_edge(cumulative({0.3: 0.03, 0.4: 0.008, 0.5: 0.0}), 0.99) == 0.4
    assert latency.nearest_edge(cumulative({0.4: 0.008, 0.5: 0.0}), 0.99) == 0.4          # nothing below
    assert latency.nearest_edge(cumulative({0.3: 0.03, 0.4: 0.0}), 0.99) == 0.3           # none over 0.4 s
    assert latency.nearest_edge({0.1: 50, math.inf: 100}, 0.99) is None                  # past the last edge


def test_a_narrow_stable_gets_a_p99_threshold_near_one_percent_and_p95_differs():
    # Median 150 ms, sigma 0.35: p99 = 339 ms lies between the 0.3 s edge (2.4 % of the stable's
    # requests over it) and 0.4 s (0.2 %, where snapping up would put "p99").
    dist = lognorm(0.35, scale=0.15)
    samples = dist.rvs(6000, random_state=np.random.default_rng(3))
    fixed, notes = fix_thresholds(_StableLatency("e2e", samples), "m", "r", AnalysisPolicy(latency_metrics=["e2e"]))
    assert fixed["e2e_p99"] == 0.3 and 0.005 <= dist.sf(fixed["e2e_p99"]) <= 0.025
    assert fixed["e2e_p95"] < fixed["e2e_p99"] and 0.025 <= dist.sf(fixed["e2e_p95"]) <= 0.1
    assert any(n.startswith("e2e_p99: 0.3 s, stable over it") for n in notes)
    assert dist.sf(latency.threshold_from_buckets(_StableLatency("e2e", samples).stable_latency(
        "m", "r", "e2e").buckets, 0.99)) < 0.005                       # what snapping up would give


def test_over_realistic_latencies_the_stables_exceedance_is_near_nominal():
    """bench/real_traffic.py's scenarios (lognormal end to end and TTFT, a queueing tail) through
    the analyzer's own threshold code: the figures README and the bench report."""
    s = threshold_exceedance(np.random.default_rng(1))["summary"]
    for kind in ("e2e", "ttft"):
        p99, p95 = s[f"{kind}_p99"], s[f"{kind}_p95"]
        assert 0.008 <= p99["median"] <= 0.0125 and p99["within_half_to_double"] >= 0.9, p99
        assert p99["min"] >= 0.002 and p99["max"] <= 0.03, p99
        assert 0.04 <= p95["median"] <= 0.06 and p95["within_half_to_double"] >= 0.9, p95
        assert s[f"{kind}_p95_equals_p99"] == 0
    assert len(EDGES) == 47                                             # 46 edges and +Inf
