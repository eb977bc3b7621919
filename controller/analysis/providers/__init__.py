"""Metric providers: one file per backend, registered by name."""
from __future__ import annotations

from typing import Any

from controller.analysis.providers.base import HistogramReading, MetricProvider

PROVIDERS = ("prometheus",)


def make_provider(name: str, **options: Any) -> MetricProvider:
    """Build a provider by name; an unknown name fails with the list of known ones."""
    if name == "prometheus":
        from controller.analysis.providers.prometheus import PrometheusProvider
        return PrometheusProvider(**options)
    raise ValueError(f"unknown metric provider {name!r}; known: {', '.join(PROVIDERS)}")


__all__ = ["HistogramReading", "MetricProvider", "PROVIDERS", "make_provider"]
