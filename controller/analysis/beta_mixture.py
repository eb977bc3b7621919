"""Beta-mixture Bayes factor for θ = ρ: an e-value that catches any regression (power one).

With a Beta(k0·ρ, k0·(1−ρ)) prior on θ, the Bayes factor of s candidate events among n
against θ = ρ is B(a+s, b+n−s)/B(a, b) ÷ (ρ^s (1−ρ)^(n−s)). It is a test martingale under
H0, so it may be checked after every event without inflating α (Ville's inequality).
The one-sided form restricts the prior to θ > ρ, which spends no power on improvements.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import betaincc, betaln

# Event counts and shares: Python numbers or numpy arrays that broadcast together.
Values = float | npt.NDArray[Any]
# What the vectorised functions return: an array, or a numpy scalar for scalar inputs.
LogValues = npt.NDArray[np.float64] | np.float64


def log_bayes_factor(s: int, n: int, rho: float, k0: float, *, one_sided: bool = True) -> float:
    if s < 0 or n < s:
        raise ValueError(f"need 0 <= s <= n, got s={s}, n={n}")
    if not 0 < rho < 1:
        raise ValueError(f"traffic share rho must lie in (0, 1), got {rho}")
    if k0 <= 0:
        raise ValueError(f"prior concentration k0 must be > 0, got {k0}")
    return float(log_bayes_factor_array(s, n - s, rho, k0, one_sided=one_sided))


def log_bayes_factor_array(s: Values, f: Values, rho: Values, k0: float, *, one_sided: bool = True) -> LogValues:
    """Vectorised core over candidate events s and other events f (arrays broadcast); unchecked."""
    a, b = k0 * rho, k0 * (1 - rho)
    log_bf: LogValues = betaln(a + s, b + f) - betaln(a, b) - s * np.log(rho) - f * np.log(1 - rho)
    if one_sided:
        # Prior mass above ρ, after and before the data: renormalises the restricted prior.
        log_bf = log_bf + _log_upper_tail(a + s, b + f, rho) - _log_upper_tail(a, b, rho)
    return log_bf


def _log_upper_tail(a: Values, b: Values, x: Values) -> npt.NDArray[np.float64]:
    """log P(θ > x) for θ ~ Beta(a, b). Where that underflows (many stable-side events at a
    large share), it is computed in logs: flooring it would overstate the e-value."""
    a, b = np.broadcast_arrays(np.asarray(a, float), np.asarray(b, float))
    shape, a, b = a.shape, a.ravel(), b.ravel()
    tail = betaincc(a, b, x)
    out: npt.NDArray[np.float64] = np.log(np.maximum(tail, np.finfo(float).tiny))
    small = tail < 1e-250
    if small.any():
        # P(θ > x) = I_{1-x}(b, a), deep in the lower tail of Beta(b, a): the continued
        # fraction converges there, and its prefactor is taken in logs.
        bs, as_ = b[small], a[small]
        out[small] = (bs * np.log1p(-x) + as_ * np.log(x) - betaln(bs, as_) - np.log(bs)
                      + np.log(_incomplete_beta_fraction(bs, as_, 1 - x)))
    return out.reshape(shape)


def _incomplete_beta_fraction(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64], x: Values,
                              max_terms: int = 1000) -> npt.NDArray[np.float64]:
    """The continued fraction of the regularised incomplete beta I_x(a, b) (modified Lentz),
    vectorised over a and b; converges fast for x < (a + 1) / (a + b + 2)."""
    tiny = 1e-300
    c = np.ones_like(a)
    d = 1 - (a + b) * x / (a + 1)
    d = 1 / np.where(np.abs(d) < tiny, tiny, d)
    h = d.copy()
    for m in range(1, max_terms + 1):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1 + num * d
            d = 1 / np.where(np.abs(d) < tiny, tiny, d)
            c = 1 + num / c
            c = np.where(np.abs(c) < tiny, tiny, c)
            step = d * c
            h = h * step
        if np.all(np.abs(step - 1) < 1e-13):
            break
    return h
