"""Wald's sequential probability ratio test on "which track did this event come from".

Each event (an error, a latency exceedance, a discordant shadow pair) is a Bernoulli draw:
it came from the candidate with probability θ. Under "no regression" θ = ρ, the
candidate's share; under the minimum effect worth catching θ = θ1. Everything is in logs.
"""
from __future__ import annotations

import math


def theta_for_effect(rho: float, effect: float) -> float:
    """θ when the candidate's event rate is `effect` times the stable's, at traffic share ρ."""
    _check_share(rho)
    if effect <= 1:
        raise ValueError(f"effect must be > 1 (a ratio of rates), got {effect}")
    return rho * effect / (rho * effect + 1 - rho)


def log_likelihood_ratio(s: int, n: int, rho: float, theta1: float) -> float:
    """log of L(θ1)/L(ρ) after s candidate events among n events."""
    _check_counts(s, n)
    _check_share(rho)
    if not rho < theta1 < 1:
        raise ValueError(f"theta1 must lie in (rho, 1), got rho={rho}, theta1={theta1}")
    return s * math.log(theta1 / rho) + (n - s) * math.log((1 - theta1) / (1 - rho))


def log_accept_bound(alpha: float, beta: float) -> float:
    """Wald's lower boundary: at or below it, accept "no regression"."""
    if not (0 < alpha < 1 and 0 < beta < 1):
        raise ValueError(f"alpha and beta must lie in (0, 1), got {alpha}, {beta}")
    return math.log(beta / (1 - alpha))


def _check_share(rho: float) -> None:
    if not 0 < rho < 1:
        raise ValueError(f"traffic share rho must lie in (0, 1), got {rho}")


def _check_counts(s: int, n: int) -> None:
    if s < 0 or n < s:
        raise ValueError(f"need 0 <= s <= n, got s={s}, n={n}")
