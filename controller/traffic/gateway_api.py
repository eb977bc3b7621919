"""Traffic router over Gateway API: one HTTPRoute per model, applied server-side as "relctl".

Two ways to carry a release (KubernetesSettings.mirror_mode):
- relctl-gateway (default): the HTTPRoute sends the model's requests to relctl's own gateway
  (a Deployment in the cluster), which splits, mirrors and compares shadow answers pair by
  pair; this router programs it through its admin API. Gateway API's RequestMirror cannot
  do that: it discards the mirrored answer.
- request-mirror / off: the HTTPRoute's backendRefs weights carry stable/candidate (a
  Service or an InferencePool per version, the split the Inference Extension's conformance
  tests); request-mirror adds a RequestMirror filter (load on the candidate, no comparison).

After each change the weights are read back; a difference is corrected and recorded
(`on_drift`), and a route that will not hold its weights raises a retryable error.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from controller.k8s import names, routes, tenants as k8s_tenants
from controller.k8s.api import KubeApi, KubeError
from controller.k8s.settings import KubernetesSettings
from controller.tenants import Tenants
from controller.traffic.base import Fault, RouteSpec
from controller.traffic.wire import RouteError

log = logging.getLogger(__name__)

API_VERSION, KIND = "gateway.networking.k8s.io/v1", "HTTPRoute"
DriftHook = Callable[[str, dict, dict], None]     # (model, wanted weights, found weights)


def log_drift(model: str, wanted: dict, found: dict) -> None:
    log.warning("route.drift", extra={"model": model, "wanted": wanted, "found": found})


class GatewayApiRouter:
    def __init__(self, api: KubeApi, k: KubernetesSettings, *, gateway=None, on_drift: DriftHook = log_drift,
                 tenants: Tenants | None = None):
        if k.mirror_mode == "relctl-gateway" and gateway is None:
            raise ValueError("mirror_mode relctl-gateway needs relctl's gateway admin client")
        self._api, self._k, self._gateway, self._on_drift = api, k, gateway, on_drift
        self._tenants = tenants or {}

    def apply(self, spec: RouteSpec) -> None:
        before = self._route(spec.model)
        if before is not None:
            self._check(spec.model, before)
        self._write(spec)

    def _write(self, spec: RouteSpec) -> None:
        namespace = k8s_tenants.for_model(self._k, self._tenants, spec.model).namespace   # where its versions are
        self._api.apply(routes.http_route(self._k, spec, backend_namespace=namespace))
        if self._gateway is not None:
            self._gateway.apply(spec)
        self._verify(spec)
        log.info("route applied", extra={"model": spec.model, "weights": dict(spec.weights),
                                         "mirror_to": spec.mirror_to, "mode": self._k.mirror_mode})

    def current(self, model: str) -> RouteSpec | None:
        """The route as the cluster (or relctl's gateway) holds it now."""
        route = self._route(model)
        if route is None:
            return None
        if self._gateway is not None:
            return self._gateway.current(model)
        wanted = routes.desired_spec(route)
        if wanted is None:
            return None
        return dataclasses.replace(wanted, weights=routes.observed_weights(self._k, route, wanted))

    def correct_drift(self, model: str) -> bool:
        """Re-apply what relctl last applied if the live weights differ; True when it did."""
        route = self._route(model)
        wanted = routes.desired_spec(route) if route else None
        if wanted is None or not self._check(model, route):
            return False
        self._write(wanted)
        return True

    def remove(self, model: str) -> None:
        self._api.delete(API_VERSION, KIND, self._k.namespace, names.route_name(model))
        if self._gateway is not None:
            self._gateway.remove(model)

    def set_fault(self, model: str, track: str, fault: Fault) -> None:
        if self._gateway is None:
            raise RouteError("fault injection needs relctl's gateway in the path (mirror_mode relctl-gateway); "
                             f"mirror_mode is {self._k.mirror_mode}")
        self._gateway.set_fault(model, track, fault)

    def _route(self, model: str) -> dict | None:
        return self._api.get(API_VERSION, KIND, self._k.namespace, names.route_name(model))

    def _check(self, model: str, route: dict) -> bool:
        """Record a drift between what relctl applied and what is live; True if there is one."""
        wanted = routes.desired_spec(route)
        if wanted is None:
            return False
        found = self._live_weights(route, wanted)
        if routes.weights_match(wanted.weights, found):
            return False
        self._on_drift(model, dict(wanted.weights), found)
        return True

    def _live_weights(self, route: dict, wanted: RouteSpec) -> dict[str, float]:
        if self._gateway is not None:
            live = self._gateway.current(wanted.model)
            return dict(live.weights) if live else {}
        return routes.observed_weights(self._k, route, wanted)

    def _verify(self, spec: RouteSpec) -> None:
        route = self._route(spec.model)
        found = self._live_weights(route, spec) if route else {}
        if not routes.weights_match(spec.weights, found):
            raise KubeError(f"HTTPRoute {names.route_name(spec.model)}: weights read back {found} "
                            f"instead of {dict(spec.weights)}; another writer holds them", 409, True)


def build(settings, sessions) -> GatewayApiRouter:
    """Backend factory (controller.backends): Gateway API HTTPRoute (and relctl's gateway)."""
    from controller.config import secret
    from controller.k8s.api import api_client
    from controller.traffic.embedded import EmbeddedGatewayRouter
    k = settings.kubernetes
    api = KubeApi(api_client(k), timeout=k.request_timeout_seconds)
    gateway = None
    if k.mirror_mode == "relctl-gateway":
        gateway = EmbeddedGatewayRouter(k.relctl_gateway_admin_url, secret("RELCTL_GATEWAY_TOKEN"))
    return GatewayApiRouter(api, k, gateway=gateway, tenants=getattr(settings, "tenants", None))
