"""HTTPRoute for a model, from a RouteSpec and back (pure functions).

Weights: RouteSpec carries percents, an HTTPRoute integer weights (0 to 1,000,000); percent
x 100 keeps two decimals. The RouteSpec relctl applied rides in an annotation, so `current`
can tell the route it wanted from the weights the cluster holds (a drift).
"""
from __future__ import annotations

import json

from controller.k8s import names
from controller.k8s.settings import KubernetesSettings
from controller.traffic.base import RouteSpec
from controller.traffic.wire import route_from_json, route_to_json

INFERENCE_GROUP = "inference.networking.k8s.io"
ROUTE_ANNOTATION = "relctl.io/route"
SCALE = 100          # HTTPRoute weight units per percent


def route_metadata(k: KubernetesSettings, spec: RouteSpec) -> dict:
    return {"name": names.route_name(spec.model), "namespace": k.namespace,
            "labels": {"app.kubernetes.io/managed-by": names.MANAGED_BY,
                       names.MODEL_LABEL: names.slug(spec.model, limit=63)},
            "annotations": {names.MODEL_ANNOTATION: spec.model,
                            ROUTE_ANNOTATION: json.dumps(route_to_json(spec), sort_keys=True)}}


def http_route(k: KubernetesSettings, spec: RouteSpec, backend_namespace: str | None = None) -> dict:
    """The model's HTTPRoute: weighted backends per version, or all to relctl's gateway. The route is in
    the controller's namespace; a tenant's versions are in `backend_namespace`, which its backendRefs
    name (the tenant's ReferenceGrant, controller/k8s/tenants.py, allows that)."""
    ns = backend_namespace if backend_namespace and backend_namespace != k.namespace else None
    rule: dict = {"matches": [_match(k, spec.model)]}
    if k.mirror_mode == "relctl-gateway":
        # relctl's gateway splits and mirrors (with paired comparison); the route only reaches it
        rule["backendRefs"] = [{"group": "", "kind": "Service", "name": k.relctl_gateway_service,
                                "port": k.relctl_gateway_port, "weight": 1}]
    else:
        rule["backendRefs"] = [_backend_ref(k, spec.model, b.version, spec.weights.get(b.track, 0.0), ns)
                               for b in spec.backends]
        mirror = _mirror_filter(k, spec, ns)
        if mirror:
            rule["filters"] = [mirror]
    parent = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": k.gateway_name,
              "namespace": k.gateway_namespace or k.namespace}
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": route_metadata(k, spec), "spec": {"parentRefs": [parent], "rules": [rule]}}


def _match(k: KubernetesSettings, model: str) -> dict:
    match: dict = {"path": {"type": "PathPrefix", "value": k.path_prefix}}
    if k.model_header:
        match["headers"] = [{"type": "Exact", "name": k.model_header, "value": model}]
    return match


def _backend_ref(k: KubernetesSettings, model: str, version: str, percent: float, ns: str | None) -> dict:
    name, weight = names.version_name(model, version), int(round(percent * SCALE))
    if k.backend_kind == "inference-pool":
        ref = {"group": INFERENCE_GROUP, "kind": "InferencePool", "name": name, "weight": weight}
    else:
        ref = {"group": "", "kind": "Service", "name": name, "port": k.port, "weight": weight}
    return {**ref, "namespace": ns} if ns else ref


def _mirror_filter(k: KubernetesSettings, spec: RouteSpec, ns: str | None = None) -> dict | None:
    """Gateway API RequestMirror: the copy's answer is discarded (load only, no comparison)."""
    if k.mirror_mode != "request-mirror" or not spec.mirror_to:
        return None
    target = next(b for b in spec.backends if b.track == spec.mirror_to)
    ref = {"group": "", "kind": "Service", "name": names.version_name(spec.model, target.version), "port": k.port}
    return {"type": "RequestMirror", "requestMirror": {
        "backendRef": {**ref, "namespace": ns} if ns else ref, "percent": int(round(spec.mirror_percent))}}


def desired_spec(route: dict) -> RouteSpec | None:
    """The RouteSpec relctl last applied to this HTTPRoute (its annotation), or None."""
    raw = (route.get("metadata", {}).get("annotations") or {}).get(ROUTE_ANNOTATION)
    return route_from_json(json.loads(raw)) if raw else None


def observed_weights(k: KubernetesSettings, route: dict, spec: RouteSpec) -> dict[str, float]:
    """Track -> percent as the cluster holds them, mapped back through the version names."""
    refs = [r for rule in route.get("spec", {}).get("rules", []) for r in rule.get("backendRefs", [])]
    by_name = {names.version_name(spec.model, b.version): b.track for b in spec.backends}
    raw = {by_name.get(r.get("name"), f"unknown:{r.get('name')}"): float(r.get("weight", 1)) for r in refs}
    total = sum(raw.values())
    return {t: (w * 100.0 / total if total else 0.0) for t, w in raw.items()}


def weights_match(want: dict[str, float], have: dict[str, float], tolerance: float = 0.01) -> bool:
    tracks = set(want) | set(have)
    return all(abs(want.get(t, 0.0) - have.get(t, 0.0)) <= tolerance for t in tracks)
