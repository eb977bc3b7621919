"""relctl's embedded OpenAI-compatible gateway: weighted split, shadow mirror with paired
comparison, validators, fault injection, audit hashes and per-track Prometheus metrics."""
from controller.gateway.server import GatewayServer, build_app
from controller.gateway.state import GatewayConfig, GatewayState

__all__ = ["GatewayConfig", "GatewayServer", "GatewayState", "build_app"]
