"""Exact (Clopper-Pearson) upper confidence bound on a rate."""
from __future__ import annotations

from scipy.special import betaincinv


def rate_upper_bound(events: int, trials: int, alpha: float) -> float:
    """One-sided 1−α upper bound on the event rate; 1.0 when nothing was observed."""
    if events < 0 or trials < events:
        raise ValueError(f"need 0 <= events <= trials, got {events}, {trials}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if trials == 0 or events == trials:
        return 1.0
    return float(betaincinv(events + 1, trials - events, 1 - alpha))
