"""Kubernetes API access through the official client: server-side apply, get, list, delete.

Every write of a rendered object is a server-side apply with field manager "relctl" (force:
relctl owns the fields it renders, and nothing else should write them). Errors come back as KubeError, classified:
409/429/5xx and lost connections are retryable (the next reconcile tick tries again);
400/401/403/404/422 are final and say what to fix.
"""
from __future__ import annotations

import json
import logging
import os
import socket
from typing import Any

from kubernetes import client as k8s

log = logging.getLogger(__name__)

FIELD_MANAGER = "relctl"
PLURALS = {
    "Deployment": "deployments", "Service": "services", "PodDisruptionBudget": "poddisruptionbudgets",
    "HorizontalPodAutoscaler": "horizontalpodautoscalers", "ScaledObject": "scaledobjects",
    "InferencePool": "inferencepools", "HTTPRoute": "httproutes", "Pod": "pods", "Event": "events",
    "Lease": "leases", "Job": "jobs",
}
RETRYABLE = {409, 429, 500, 502, 503, 504}
HINTS = {
    401: "the credentials were refused: check the kubeconfig or the service account token",
    403: "relctl's service account lacks RBAC permission for this (see deploy/kustomize RBAC)",
    404: "the resource type is not installed (is the CRD applied?) or the object is gone",
    409: "conflict with a concurrent change; retried on the next tick",
    422: "the object is invalid for this cluster's API version",
}


class KubeError(RuntimeError):
    def __init__(self, message: str, status: int | None, retryable: bool):
        super().__init__(message)
        self.status = status
        self.retryable = retryable


def classify(status: int | None) -> bool:
    """Whether a failed call may succeed if simply tried again."""
    return status is None or status in RETRYABLE


def api_client(settings) -> k8s.ApiClient:
    """An ApiClient from KubernetesSettings: the pod's service account, or a kubeconfig. Its
    User-Agent names the replica (POD_NAME, else the host), so the API server's audit log says
    which controller replica made each call."""
    from kubernetes import config
    cfg = k8s.Configuration()
    if settings.in_cluster:
        config.load_incluster_config(client_configuration=cfg)
    else:
        config.load_kube_config(config_file=settings.kubeconfig, context=settings.context,
                                client_configuration=cfg)
    client = k8s.ApiClient(cfg)
    client.user_agent = f"relctl/{os.environ.get('POD_NAME') or socket.gethostname()}"
    return client


def object_path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    if kind not in PLURALS:
        raise ValueError(f"relctl does not manage {kind!r} objects; known kinds: {', '.join(sorted(PLURALS))}")
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{base}/namespaces/{namespace}/{PLURALS[kind]}"
    return f"{path}/{name}" if name else path


class KubeApi:
    def __init__(self, client: k8s.ApiClient, timeout: float = 15.0):
        self._client = client
        self._timeout = timeout

    def apply(self, obj: dict) -> dict:
        """Server-side apply of a whole object (creates it or updates relctl's fields)."""
        meta = obj["metadata"]
        path = object_path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        return self._call("PATCH", path, body=obj, query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
                          content_type="application/apply-patch+yaml")

    def create(self, obj: dict) -> dict:
        """POST: fails with 409 when the object exists (what leader election's first claim needs)."""
        meta = obj["metadata"]
        return self._call("POST", object_path(obj["apiVersion"], obj["kind"], meta["namespace"]), body=obj)

    def replace(self, obj: dict) -> dict:
        """PUT with the object's resourceVersion: 409 when someone changed it since it was read."""
        meta = obj["metadata"]
        return self._call("PUT", object_path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"]),
                          body=obj)

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict | None:
        try:
            return self._call("GET", object_path(api_version, kind, namespace, name), missing_ok=True)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, api_version: str, kind: str, namespace: str, *, labels: str = "", fields: str = "") -> list[dict]:
        query = [(k, v) for k, v in (("labelSelector", labels), ("fieldSelector", fields)) if v]
        return self._call("GET", object_path(api_version, kind, namespace), query=query).get("items", [])

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        """Delete (foreground: pods go before the Deployment does); False when it was already gone."""
        try:
            self._call("DELETE", object_path(api_version, kind, namespace, name),
                       body={"propagationPolicy": "Foreground"}, missing_ok=True)
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def _call(self, method: str, path: str, *, body: Any = None, query: list | None = None,
              content_type: str = "application/json", missing_ok: bool = False) -> dict:
        """`missing_ok`: a 404 is an answer the caller expects (absent object), not logged as a failure."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        params = self._client.param_serialize(method=method, resource_path=path, query_params=query or [],
                                              header_params=headers, body=body, auth_settings=["BearerToken"])
        try:
            resp = self._client.call_api(*params, _request_timeout=self._timeout)
            raw = resp.read()
        except k8s.ApiException as exc:
            raise _error(method, path, exc.status, exc.body, quiet=missing_ok and exc.status == 404) from None
        except Exception as exc:  # urllib3 connection and timeout errors: the API server is unreachable
            raise KubeError(f"{method} {path}: Kubernetes API unreachable ({exc})", None, True) from None
        if resp.status >= 400:
            raise _error(method, path, resp.status, raw, quiet=missing_ok and resp.status == 404)
        return json.loads(raw) if raw else {}


def _error(method: str, path: str, status: int | None, body: Any, quiet: bool = False) -> KubeError:
    message = ""
    try:
        message = json.loads(body).get("message", "")
    except (TypeError, ValueError, AttributeError):
        message = (body.decode(errors="replace") if isinstance(body, bytes) else str(body or ""))[:300]
    retryable = classify(status)
    hint = HINTS.get(status, "server error; retried on the next tick" if retryable else "")
    text = f"{method} {path} -> HTTP {status}: {message}" + (f" ({hint})" if hint else "")
    log.log(logging.DEBUG if quiet else logging.WARNING if retryable else logging.ERROR, "k8s.call_failed",
            extra={"method": method, "path": path, "status": status, "retryable": retryable})
    return KubeError(text, status, retryable)
