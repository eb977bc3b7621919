"""Kubernetes pool: each deployed version is a vLLM Deployment on one GPU product.

The cluster is the state: every call reads it (a restarted controller adopts what it
finds), every write is a server-side apply of the rendered objects (controller/k8s/render.py),
so `ensure` is idempotent. A tenant's model servers go in the tenant's namespace and run as its
ServiceAccount (controller/k8s/tenants.py); other models in the pool's. After promotion
`retire` keeps the previous champion warm, out of rotation, for the policy's standby_seconds;
`reap_standbys` removes it afterwards.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from pathlib import Path

from controller.k8s import health, names, render, tenants as k8s_tenants
from controller.k8s.api import KubeApi
from policies.kubernetes import KubernetesPolicy
from controller.k8s.settings import KubernetesSettings
from controller.pools.base import Served
from controller.tenants import Tenants

log = logging.getLogger(__name__)

QUANTIZED = ("awq", "compressed-tensors")
VLLM_PODS = "app.kubernetes.io/name=vllm,app.kubernetes.io/managed-by=relctl"


class KubernetesPool:
    # The pods' init container downloads the version and verifies it against its manifest and
    # signature (controller/k8s/fetch_model.py; a failure is a failed version, health.py): the
    # controller needs no copy of the checkpoint, so it downloads none for this pool.
    fetches_checkpoints = True

    def __init__(self, api: KubeApi, k: KubernetesSettings, *, mlflow_uri: str,
                 policy_for: Callable[[str], KubernetesPolicy] = lambda model: KubernetesPolicy(),
                 clock: Callable[[], float] = time.time, name: str = "kubernetes", tenants: Tenants | None = None):
        self.name = name
        self._api, self._k, self._mlflow_uri = api, k, mlflow_uri
        self._tenants = tenants or {}
        self._policy_for, self._clock = policy_for, clock

    def can_serve(self, quantization: str | None) -> tuple[bool, str]:
        if quantization in (None, "", "none"):
            return True, f"full precision on {self._k.gpu_product}"
        if quantization in QUANTIZED:
            return True, f"GPU pool ({self._k.gpu_product}) serves {quantization} builds with vLLM's 4-bit kernels"
        return False, f"pool {self.name} does not serve {quantization!r} checkpoints"

    def ensure(self, model: str, version: str, artifact_dir: Path | None) -> Served:
        """Apply the version's objects (the pods fetch the model from MLflow: artifact_dir is unused)."""
        for obj in self._objects(model, version):
            self._api.apply(obj)
        log.info("pool.apply", extra={"model": model, "version": version, "namespace": self._k_for(model).namespace})
        return self.status(model, version) or self._served(model, version, "starting", "applied")

    def status(self, model: str, version: str) -> Served | None:
        ns = self._k_for(model).namespace
        dep = self._api.get("apps/v1", "Deployment", ns, names.version_name(model, version))
        if dep is None:
            return None
        if _standby_until(dep) is not None:
            return self._served(model, version, "stopped", "hot standby, out of rotation")
        pods = self._api.list("v1", "Pod", ns, labels=f"{names.INSTANCE_LABEL}={names.version_name(model, version)}")
        h = health.assess(dep, pods, self._k.crashloop_restarts)
        detail = h.detail
        if h.state == "failed" and h.pod:
            events = self._api.list("v1", "Event", ns,
                                    fields=f"involvedObject.kind=Pod,involvedObject.name={h.pod}")
            warning = health.latest_warning(events)
            detail += f"; event {warning}" if warning else ""
        return self._served(model, version, h.state, detail)

    def stop(self, model: str, version: str) -> None:
        for obj in reversed(self._objects(model, version)):
            meta = obj["metadata"]
            self._api.delete(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        log.info("pool.stop", extra={"model": model, "version": version})

    def stop_all(self) -> None:
        for dep in self._deployments():
            model, version = _identity(dep)
            self.stop(model, version)

    def retire(self, model: str, version: str) -> None:
        """After promotion: keep the old champion warm for standby_seconds (0: stop it now)."""
        seconds = self._policy_for(model).standby_seconds
        if seconds <= 0:
            return self.stop(model, version)
        until = dt.datetime.fromtimestamp(self._clock() + seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        dep = render.deployment(self._k_for(model), model, version, self._mlflow)
        dep["metadata"]["annotations"][names.STANDBY_ANNOTATION] = until
        self._api.apply(dep)
        log.info("pool.standby", extra={"model": model, "version": version, "until": until})

    def reap_standbys(self) -> list[tuple[str, str]]:
        """Stop every standby whose time is up; the (model, version) pairs stopped."""
        reaped = []
        for dep in self._deployments():
            until = _standby_until(dep)
            if until is not None and until <= self._clock():
                self.stop(*_identity(dep))
                reaped.append(_identity(dep))
        return reaped

    @property
    def _mlflow(self) -> str:
        return self._k.mlflow_uri or self._mlflow_uri

    def _k_for(self, model: str) -> KubernetesSettings:
        return k8s_tenants.for_model(self._k, self._tenants, model)

    def _deployments(self) -> list[dict]:
        """relctl's vLLM Deployments in the pool's namespace and every tenant's."""
        return [dep for ns in k8s_tenants.namespaces(self._k, self._tenants)
                for dep in self._api.list("apps/v1", "Deployment", ns, labels=VLLM_PODS)]

    def _objects(self, model: str, version: str) -> list[dict]:
        return render.version_objects(self._k_for(model), model, version, self._policy_for(model), self._mlflow)

    def _served(self, model: str, version: str, state: str, detail: str) -> Served:
        return Served(model, version, render.service_url(self._k_for(model), model, version), state, detail)


def _identity(dep: dict) -> tuple[str, str]:
    ann = dep["metadata"].get("annotations") or {}
    return ann[names.MODEL_ANNOTATION], ann["relctl.io/version"]


def _standby_until(dep: dict) -> float | None:
    raw = (dep["metadata"].get("annotations") or {}).get(names.STANDBY_ANNOTATION)
    if not raw:
        return None
    return dt.datetime.strptime(raw, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()


def policy_lookup(settings) -> Callable[[str], KubernetesPolicy]:
    """model -> its policy's kubernetes section, through the watched models' policy names."""
    from policies.kubernetes import policy_section
    from policies.loader import load_policy
    by_model = {m.name: m.policy for m in getattr(settings, "models", [])}
    return lambda model: policy_section(load_policy(by_model.get(model, "default")))


def controller_verify_key(environ=None) -> str:
    """The public key the controller checks signatures with (RELCTL_VERIFY_KEY, else its signing key's),
    as hex for the init container; "" when it checks none."""
    import os

    from cryptography.hazmat.primitives import serialization

    from controller.registry import integrity
    public = integrity.verify_key(os.environ if environ is None else environ)
    if public is None:
        return ""
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def build(settings, sessions) -> KubernetesPool:
    """Backend factory (controller.backends): vLLM Deployments on a Kubernetes GPU pool."""
    from controller.k8s.api import api_client
    k = settings.kubernetes
    if not k.verify_key:
        k = k.model_copy(update={"verify_key": controller_verify_key()})
    api = KubeApi(api_client(k), timeout=k.request_timeout_seconds)
    return KubernetesPool(api, k, mlflow_uri=settings.mlflow_uri, policy_for=policy_lookup(settings),
                          tenants=getattr(settings, "tenants", None))
