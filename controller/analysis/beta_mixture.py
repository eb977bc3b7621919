"""Beta-mixture Bayes factor for θ = ρ: an e-value that catches any regression (power one).

With a Beta(k0·ρ, k0·(1−ρ)) prior on θ, the Bayes factor of s candidate events among n
against θ = ρ is B(a+s, b+n−s)/B(a, b) ÷ (ρ^s (1−ρ)^(n−s)). It is a test martingale under
H0, so it may be checked after every event without inflating α (Ville's inequality).
The one-sided form restricts the prior to θ > ρ, which spends no power on improvements.
"""
from __future__ import annotations

import numpy as np
from scipy.special import betaincc, betaln


def log_bayes_factor(s: int, n: int, rho: float, k0: float, *, one_sided: bool = True) -> float:
    if s < 0 or n < s:
        raise ValueError(f"need 0 <= s <= n, got s={s}, n={n}")
    if not 0 < rho < 1:
        raise ValueError(f"traffic share rho must lie in (0, 1), got {rho}")
    if k0 <= 0:
        raise ValueError(f"prior concentration k0 must be > 0, got {k0}")
    return float(log_bayes_factor_array(s, n - s, rho, k0, one_sided=one_sided))


def log_bayes_factor_array(s, f, rho: float, k0: float, *, one_sided: bool = True):
    """Vectorised core over candidate events s and other events f (arrays broadcast); unchecked."""
    a, b = k0 * rho, k0 * (1 - rho)
    log_bf = betaln(a + s, b + f) - betaln(a, b) - s * np.log(rho) - f * np.log(1 - rho)
    if one_sided:
        # Prior mass above ρ, after and before the data: renormalises the restricted prior.
        log_bf = log_bf + _log_upper_tail(a + s, b + f, rho) - _log_upper_tail(a, b, rho)
    return log_bf


def _log_upper_tail(a, b, x: float):
    """log P(θ > x) for θ ~ Beta(a, b); floored so a vanishing tail stays finite."""
    return np.log(np.maximum(betaincc(a, b, x), 1e-300))
