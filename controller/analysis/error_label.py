"""The count test on *which track each event came from* (Lindon & Malek 2022).

Under "no regression" an event (error, latency exceedance, discordant pair) comes from
the candidate with probability ρ, its share of traffic, whatever the shared rate does.
Rejection uses a weighted average of three e-processes, each a product over windows (a
window is a stretch of constant ρ): Wald's likelihood ratio tuned for the minimum effect,
a second one tuned for a large effect (caught with fewer bad answers), and the one-sided
Beta mixture, which catches any regression eventually. Averages and products of such test
martingales stay test martingales, so checking at every tick keeps α.
Acceptance of "no regression" uses Wald's lower boundary (minimum effect) on the current
window only: each canary step must earn its own acceptance.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from controller.analysis import beta_mixture, sprt
from controller.analysis.beta_mixture import Values


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
    effect: float          # minimum rate ratio worth catching (main SPRT alternative)
    k0: float              # Beta-mixture prior concentration
    sprt_weight: float     # weight of the main SPRT in the e-value average
    large_effect: float = 0.0   # second SPRT alternative (0: none)
    large_weight: float = 0.0   # its weight; the Beta mixture gets what is left

    def weights(self) -> tuple[float, float, float]:
        """(main SPRT, large-effect SPRT, mixture)."""
        large = self.large_weight if self.large_effect > 1 else 0.0
        return self.sprt_weight, large, max(0.0, 1.0 - self.sprt_weight - large)


@dataclass(frozen=True)
class CountResult:
    log_e: float           # log of the averaged e-value, all windows
    log_sprt: float        # log likelihood ratio at the minimum effect, all windows
    log_large: float       # log likelihood ratio at the large effect, all windows (0 if none)
    log_mixture: float     # log Bayes factor, all windows
    current_llr: float     # log likelihood ratio (minimum effect) of the current window
    threshold: float       # the e-value that rolls back (1/alpha unless calibrated)
    rejected: bool         # regression detected at this metric's alpha
    sprt_accepts: bool     # current window crossed Wald's lower boundary

    def evidence(self) -> dict[str, Any]:
        return {"e_value": _finite(math.exp(min(self.log_e, 690.0))), "threshold": round(self.threshold, 4),
                "log_e": round(self.log_e, 4),
                "log_sprt": round(self.log_sprt, 4), "log_large": round(self.log_large, 4),
                "log_mixture": round(self.log_mixture, 4), "current_llr": round(self.current_llr, 4),
                "rejected": self.rejected, "sprt_accepts": self.sprt_accepts}


def run(segments: list[Segment], spec: CountSpec, threshold: float | None = None) -> CountResult:
    """Evaluate the test over all segments; the last one is the current window. It rejects
    when the averaged e-value reaches `threshold`, by default 1/alpha (Ville)."""
    if not segments:
        raise ValueError("the count test needs at least one segment")
    total = np.zeros(3)
    for seg in segments:
        if seg.s < 0 or seg.n < seg.s:
            raise ValueError(f"need 0 <= s <= n, got s={seg.s}, n={seg.n}")
        sprt.theta_for_effect(seg.rho, spec.effect)      # raises on a bad share or effect
        current = window_logs(float(seg.s), float(seg.n - seg.s), seg.rho, spec)
        total += current
    log_e = float(combine(total, spec))
    llr = float(current[0])
    threshold = threshold or 1 / spec.alpha
    return CountResult(
        log_e=log_e, log_sprt=float(total[0]), log_large=float(total[1]), log_mixture=float(total[2]),
        current_llr=llr, threshold=threshold, rejected=log_e >= math.log(threshold),
        sprt_accepts=segments[-1].n > 0 and llr <= sprt.log_accept_bound(spec.alpha, spec.beta),
    )


def window_logs(s: Values, f: Values, rho: Values, spec: CountSpec) -> np.ndarray:
    """The three parts' log e-values for one window, stacked on a new first axis: (main SPRT,
    large-effect SPRT, mixture). s, f and rho may be arrays (they broadcast); unchecked."""
    s, f, rho = np.asarray(s, float), np.asarray(f, float), np.asarray(rho, float)
    main = _llr(s, f, rho, spec.effect)
    large = _llr(s, f, rho, spec.large_effect) if spec.large_effect > 1 else np.zeros_like(main)
    mix = beta_mixture.log_bayes_factor_array(s, f, rho, spec.k0)
    return np.stack(np.broadcast_arrays(main, large, mix))


def combine(logs: np.ndarray, spec: CountSpec) -> np.ndarray:
    """log of the weighted average of the parts (first axis of `logs`, summed over windows)."""
    terms = [math.log(w) + part for w, part in zip(spec.weights(), logs) if w > 0]
    combined: np.ndarray = np.logaddexp.reduce(np.stack(terms), axis=0)
    return combined


def log_e_values(s: np.ndarray, f: np.ndarray, rho: float, spec: CountSpec) -> np.ndarray:
    """log e-value of one window for arrays of candidate events s and other events f.

    The same statistic as `run` on a single segment, vectorised for simulations and for
    exact false-alarm calculations.
    """
    return combine(window_logs(s, f, rho, spec), spec)


def _llr(s: npt.NDArray[np.float64], f: npt.NDArray[np.float64], rho: npt.NDArray[np.float64],
         effect: float) -> npt.NDArray[np.float64]:
    theta = rho * effect / (rho * effect + 1 - rho)
    llr: npt.NDArray[np.float64] = s * np.log(theta / rho) + f * np.log((1 - theta) / (1 - rho))
    return llr


def log_e_table(max_events: int, rho: float, spec: CountSpec) -> np.ndarray:
    """log_e_values for every (s, f) with s, f <= max_events: table[s, f]."""
    s = np.arange(max_events + 1, dtype=float)[:, None]
    f = np.arange(max_events + 1, dtype=float)[None, :]
    return log_e_values(s, f, rho, spec)


def _finite(x: float) -> float:
    return float(f"{x:.6g}") if math.isfinite(x) else 1e300
