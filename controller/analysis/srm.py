"""Sample-ratio mismatch: does the observed split match the intended one?

A two-sided Beta-mixture Bayes factor on "which track served each request", multiplied
over windows. A mismatch means the per-track comparisons are not trustworthy (a routing
bug, a sticky client, a crashing pod), so the release pauses for a human instead of
rolling back or promoting on biased evidence.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from controller.analysis import beta_mixture
from controller.analysis.types import Window


@dataclass(frozen=True)
class SrmResult:
    log_bf: float
    mismatch: bool
    observed_share: float      # current window
    intended_share: float      # current window

    def evidence(self) -> dict[str, Any]:
        return {"log_bf": round(self.log_bf, 4), "mismatch": self.mismatch,
                "observed_share": round(self.observed_share, 5), "intended_share": self.intended_share}


def check(windows: list[Window], alpha: float, k0: float) -> SrmResult:
    """`windows` are canary windows (share > 0), the current one last."""
    if not windows:
        raise ValueError("the sample-ratio check needs at least one canary window")
    log_bf = 0.0
    for w in windows:
        n_c, n = w.candidate.requests, w.candidate.requests + w.stable.requests
        log_bf += beta_mixture.log_bayes_factor(n_c, n, w.canary_share, k0, one_sided=False)
    cur = windows[-1]
    total = cur.candidate.requests + cur.stable.requests
    observed = cur.candidate.requests / total if total else 0.0
    return SrmResult(log_bf, log_bf >= -math.log(alpha), observed, cur.canary_share)
