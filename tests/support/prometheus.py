"""Test helper: a real Prometheus server (the class ships in the package for the demo)."""
from controller.analysis.prometheus_server import PrometheusNotFound, PrometheusServer

__all__ = ["PrometheusNotFound", "PrometheusServer"]
