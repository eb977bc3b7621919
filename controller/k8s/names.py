"""Kubernetes names and labels for a model version.

MLflow model names allow capitals, underscores and lengths Kubernetes names do not:
a lossy slug gets a short hash of the real name, so two models never share objects, and the
real name travels in an annotation.
"""
from __future__ import annotations

import hashlib
import re

MANAGED_BY = "relctl"
MODEL_ANNOTATION = "relctl.io/model"
VERSION_LABEL = "relctl.io/version"
MODEL_LABEL = "relctl.io/model"
INSTANCE_LABEL = "app.kubernetes.io/instance"
STANDBY_ANNOTATION = "relctl.io/standby-until"
WEIGHTS_ANNOTATION = "relctl.io/weights"


def slug(model: str, limit: int = 40) -> str:
    """A DNS-1035 label for a model name (starts with a letter, [a-z0-9-], at most `limit` chars)."""
    s = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")
    if not s or not s[0].isalpha():
        s = "m-" + s
    if s == model and len(s) <= limit:
        return s
    digest = hashlib.sha1(model.encode()).hexdigest()[:6]
    return f"{s[:limit - 7].rstrip('-')}-{digest}"


def version_name(model: str, version: str) -> str:
    """Name of every object of one deployed version (Deployment, Service, PDB, autoscaler, pool)."""
    v = re.sub(r"[^a-z0-9]+", "-", str(version).lower()).strip("-")[:12]
    return f"{slug(model)}-v{v}"


def pod_regex(model: str, version: str) -> str:
    """The names of a version's pods (Deployment, ReplicaSet hash, suffix), for PromQL `pod=~`."""
    return f"{version_name(model, version)}-[a-z0-9]+-[a-z0-9]+"


def route_name(model: str) -> str:
    return slug(model, limit=63)


def version_labels(model: str, version: str) -> dict[str, str]:
    """Labels of a version's objects and pods; the instance label is the selector."""
    return {
        "app.kubernetes.io/name": "vllm",
        INSTANCE_LABEL: version_name(model, version),
        "app.kubernetes.io/managed-by": MANAGED_BY,
        MODEL_LABEL: slug(model, limit=63),
        VERSION_LABEL: re.sub(r"[^A-Za-z0-9_.-]", "-", str(version))[:63],
    }


def selector(model: str, version: str) -> dict[str, str]:
    return {INSTANCE_LABEL: version_name(model, version)}
