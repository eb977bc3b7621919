"""The count test on *which track each event came from* (Lindon & Malek 2022).

Under "no regression" an event (error, latency exceedance, discordant pair) comes from
the candidate with probability ρ, its share of traffic, whatever the shared rate does.
Rejection uses the average of two e-processes, each a product over windows (a window is
a stretch of constant ρ): Wald's likelihood ratio tuned for the minimum effect, and the
one-sided Beta mixture, which catches any regression eventually. Averages and products
of such test martingales stay test martingales, so checking at every tick keeps α.
Acceptance of "no regression" uses Wald's lower boundary on the current window only:
each canary step must earn its own acceptance.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from controller.analysis import beta_mixture, sprt


@dataclass(frozen=True)
class Segment:
    """Events in one window: s from the candidate among n in all, at candidate share rho."""
    s: int
    n: int
    rho: float


@dataclass(frozen=True)
class CountSpec:
    alpha: float           # this metric's slice of the false-rollback budget
    beta: float            # Wald's type II error for the acceptance boundary
    effect: float          # minimum rate ratio worth catching (SPRT alternative)
    k0: float              # Beta-mixture prior concentration
    sprt_weight: float     # weight of the SPRT in the e-value average


@dataclass(frozen=True)
class CountResult:
    log_e: float           # log of the averaged e-value, all windows
    log_sprt: float        # log likelihood ratio, all windows
    log_mixture: float     # log Bayes factor, all windows
    current_llr: float     # log likelihood ratio of the current window
    rejected: bool         # regression detected at this metric's alpha
    sprt_accepts: bool     # current window crossed Wald's lower boundary

    def evidence(self) -> dict:
        return {"e_value": _finite(math.exp(min(self.log_e, 690.0))), "log_e": round(self.log_e, 4),
                "log_sprt": round(self.log_sprt, 4), "log_mixture": round(self.log_mixture, 4),
                "current_llr": round(self.current_llr, 4), "rejected": self.rejected,
                "sprt_accepts": self.sprt_accepts}


def run(segments: list[Segment], spec: CountSpec) -> CountResult:
    """Evaluate the test over all segments; the last one is the current window."""
    if not segments:
        raise ValueError("the count test needs at least one segment")
    log_sprt = log_mix = 0.0
    llr = 0.0
    for seg in segments:
        llr = sprt.log_likelihood_ratio(seg.s, seg.n, seg.rho, sprt.theta_for_effect(seg.rho, spec.effect))
        log_sprt += llr
        log_mix += beta_mixture.log_bayes_factor(seg.s, seg.n, seg.rho, spec.k0)
    log_e = _log_weighted_mean(log_sprt, log_mix, spec.sprt_weight)
    return CountResult(
        log_e=log_e, log_sprt=log_sprt, log_mixture=log_mix, current_llr=llr,
        rejected=log_e >= -math.log(spec.alpha),
        sprt_accepts=segments[-1].n > 0 and llr <= sprt.log_accept_bound(spec.alpha, spec.beta),
    )


def log_e_values(s: np.ndarray, f: np.ndarray, rho: float, spec: CountSpec) -> np.ndarray:
    """log e-value of one window for arrays of candidate events s and other events f.

    The same statistic as `run` on a single segment, vectorised for simulations and for
    exact false-alarm calculations.
    """
    theta1 = sprt.theta_for_effect(rho, spec.effect)
    log_sprt = s * math.log(theta1 / rho) + f * math.log((1 - theta1) / (1 - rho))
    log_mix = beta_mixture.log_bayes_factor_array(s, f, rho, spec.k0)
    if spec.sprt_weight >= 1:
        return log_sprt
    if spec.sprt_weight <= 0:
        return log_mix
    return np.logaddexp(math.log(spec.sprt_weight) + log_sprt, math.log(1 - spec.sprt_weight) + log_mix)


def log_e_table(max_events: int, rho: float, spec: CountSpec) -> np.ndarray:
    """log_e_values for every (s, f) with s, f <= max_events: table[s, f]."""
    s = np.arange(max_events + 1, dtype=float)[:, None]
    f = np.arange(max_events + 1, dtype=float)[None, :]
    return log_e_values(s, f, rho, spec)


def _log_weighted_mean(log_a: float, log_b: float, w: float) -> float:
    """log(w·e^a + (1−w)·e^b) without overflow."""
    terms = [math.log(w) + log_a] if w > 0 else []
    if w < 1:
        terms.append(math.log(1 - w) + log_b)
    top = max(terms)
    return top + math.log(sum(math.exp(t - top) for t in terms))


def _finite(x: float) -> float:
    return float(f"{x:.6g}") if math.isfinite(x) else 1e300
