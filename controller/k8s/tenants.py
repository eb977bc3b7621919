"""A tenant's model servers on Kubernetes: its own namespace, ServiceAccount and a Role there.

Per tenant: a Namespace, a ServiceAccount its vLLM pods run as (no API token mounted: model
servers never call the API), a Role holding only what the pool does in that namespace, and a
RoleBinding granting it to the controller's ServiceAccount. The controller then needs no
cluster-wide rights over model servers. Where the HTTPRoute (in the controller's namespace)
points at the versions themselves (mirror_mode request-mirror or off), a ReferenceGrant in the
tenant's namespace lets it reference them.
"""
from __future__ import annotations

from controller.k8s import names
from controller.k8s.routes import INFERENCE_GROUP
from controller.k8s.settings import KubernetesSettings
from controller.tenants import Tenants, TenantSettings, namespace_of, tenant_of

POOL_SERVICE_ACCOUNT = "relctl-pool"
POOL_ROLE = "relctl-pool"
ROUTE_GRANT = "relctl-routes"
CONTROLLER_SERVICE_ACCOUNT = "relctl-controller"   # deploy/kustomize/base/rbac.yaml
# Server-side apply that creates an object is authorized as `create`, one that changes it as `patch`.
WRITE = ["create", "patch", "delete"]


def for_model(k: KubernetesSettings, tenants: Tenants, model: str) -> KubernetesSettings:
    """The settings a model's objects are rendered with: its tenant's namespace and ServiceAccount."""
    tenant = tenant_of(tenants, model)
    if tenant is None:
        return k
    return k.model_copy(update={"namespace": namespace_of(tenant, tenants[tenant]),
                                "service_account": POOL_SERVICE_ACCOUNT})


def namespaces(k: KubernetesSettings, tenants: Tenants) -> list[str]:
    """Every namespace the pool's model servers may be in: the controller's, then each tenant's."""
    return [k.namespace] + [namespace_of(name, t) for name, t in tenants.items()]


def pool_rules(k: KubernetesSettings) -> list[dict]:
    """Exactly what KubernetesPool calls: apply/get/delete of a version's objects, reading its pods."""
    rules = [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", *WRITE]},
             {"apiGroups": [""], "resources": ["services"], "verbs": WRITE},
             {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": WRITE},
             {"apiGroups": [""], "resources": ["pods", "events"], "verbs": ["list"]}]
    if k.autoscaler == "keda":
        rules.append({"apiGroups": ["keda.sh"], "resources": ["scaledobjects"], "verbs": WRITE})
    else:
        rules.append({"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": WRITE})
    if k.backend_kind == "inference-pool":
        rules.append({"apiGroups": ["inference.networking.k8s.io"], "resources": ["inferencepools"], "verbs": WRITE})
    return rules


def tenant_objects(k: KubernetesSettings, name: str, tenant: TenantSettings) -> list[dict]:
    """Namespace, ServiceAccount, Role and RoleBinding of one tenant (and the ReferenceGrant its
    routes need, see reference_grant), in apply order."""
    ns = namespace_of(name, tenant)
    labels = {"app.kubernetes.io/managed-by": names.MANAGED_BY, "relctl.io/tenant": name}
    meta = {"namespace": ns, "labels": labels}
    objs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": POOL_SERVICE_ACCOUNT, **meta},
         "automountServiceAccountToken": False},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": POOL_ROLE, **meta}, "rules": pool_rules(k)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": POOL_ROLE, **meta},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": POOL_ROLE},
         "subjects": [{"kind": "ServiceAccount", "name": CONTROLLER_SERVICE_ACCOUNT, "namespace": k.namespace}]},
    ]
    return objs + ([reference_grant(k, meta)] if k.mirror_mode != "relctl-gateway" else [])


def reference_grant(k: KubernetesSettings, meta: dict) -> dict:
    """Lets HTTPRoutes in the controller's namespace send to (and mirror to) the tenant's versions: a
    cross-namespace backendRef is refused by the gateway without it. Not needed with relctl-gateway,
    whose route only reaches relctl's gateway (in the controller's namespace)."""
    to = []          # exactly the kinds the route refers to: weighted backends, and the mirror's Service
    if k.backend_kind == "service" or k.mirror_mode == "request-mirror":
        to.append({"group": "", "kind": "Service"})
    if k.backend_kind == "inference-pool":
        to.append({"group": INFERENCE_GROUP, "kind": "InferencePool"})
    return {"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
            "metadata": {"name": ROUTE_GRANT, **meta},
            "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": k.namespace}],
                     "to": to}}


def all_tenant_objects(k: KubernetesSettings, tenants: Tenants) -> list[dict]:
    return [obj for name, t in tenants.items() for obj in tenant_objects(k, name, t)]
