"""Properties: A/A false alarms stay <= alpha (exactly computed), and the judge is total."""
import json
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.analysis import error_label, exact
from controller.analysis.error_label import CountSpec
from controller.analysis.judge import evaluate
from controller.analysis.types import Decision, TrackCounts, Window
from policies.analysis import AnalysisPolicy


@settings(max_examples=15, deadline=None)
@given(rho=st.floats(0.01, 0.5), effect=st.floats(1.2, 10), k0=st.floats(0.5, 1000),
       weight=st.floats(0, 1), large_factor=st.floats(1, 10), large_share=st.floats(0, 1),
       alpha=st.floats(0.001, 0.2))
def test_a_a_false_alarm_rate_at_most_alpha(rho, effect, k0, weight, large_factor, large_share, alpha):
    spec = CountSpec(alpha=alpha, beta=0.2, effect=effect, k0=k0, sprt_weight=weight * (1 - large_share),
                     large_effect=effect * large_factor, large_weight=(1 - weight) * large_share)
    within, ever = exact.false_alarm(rho, spec, 150)
    # `ever` adds Ville's bound on later crossings to the exact figure: it stays <= alpha
    # only if the averaged e-value really is a test supermartingale.
    assert within <= ever <= alpha + 1e-9


def test_exact_false_alarm_calculation_agrees_with_simulation():
    # The exact calculation above is only worth trusting if it matches brute force.
    spec = CountSpec(alpha=0.2, beta=0.2, effect=3, k0=10, sprt_weight=0.5)
    rho, n = 0.3, 60
    within, _ = exact.false_alarm(rho, spec, n)
    rng = np.random.default_rng(7)
    s = np.cumsum(rng.random((20000, n)) < rho, axis=1)
    f = np.arange(1, n + 1) - s
    table = error_label.log_e_table(n, rho, spec)
    simulated = (table[s, f] >= -math.log(spec.alpha)).any(axis=1).mean()
    assert 0.01 < within <= spec.alpha
    assert abs(simulated - within) < 0.01


counts = st.integers(0, 5000)


@st.composite
def windows(draw):
    out = []
    for share in draw(st.lists(st.sampled_from([0.05, 0.1, 0.25, 0.5]), min_size=1, max_size=3)):
        sr, cr = draw(counts), draw(counts)
        out.append(Window(share, draw(st.floats(0, 600)), TrackCounts(sr, draw(st.integers(0, sr))),
                          TrackCounts(cr, draw(st.integers(0, cr)))))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ws=windows())
def test_judge_is_total_and_never_blames_an_error_free_candidate(ws):
    cfg = AnalysisPolicy()
    v = evaluate(ws, cfg, phase="canary")
    json.dumps(v.evidence)
    if all(w.candidate.errors == 0 for w in ws):
        assert v.decision != Decision.ROLLBACK
