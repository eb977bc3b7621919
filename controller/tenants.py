"""Tenants (`tenants:` in the settings): which registered models belong to which team.

A tenant owns an explicit list of model names (no prefixes or patterns: who owns a model is
read off the settings, never guessed). A model belongs to at most one tenant; a model of no
tenant is reached only by tokens without a tenant. On Kubernetes each tenant's model servers
run in the tenant's own namespace (default `relctl-<tenant>`).
"""
from __future__ import annotations

import re
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class TenantSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    models: list[str] = Field(min_length=1, description="registered model names this tenant owns")
    namespace: str | None = Field(None, pattern=DNS_LABEL, max_length=63,
                                  description="namespace of its model servers; default relctl-<tenant>")


Tenants = Mapping[str, TenantSettings]


def check_tenants(tenants: Tenants) -> Tenants:
    """Tenant names are DNS labels (they name Kubernetes objects); a model has at most one tenant."""
    owner: dict[str, str] = {}
    for name, t in tenants.items():
        if not re.fullmatch(DNS_LABEL, name) or len(f"relctl-{name}") > 63:
            raise ValueError(f"tenant name {name!r} must be a DNS label ([a-z0-9-], at most 56 characters)")
        for model in t.models:
            if model in owner and owner[model] != name:
                raise ValueError(f"model {model!r} is in tenants {owner[model]!r} and {name!r}; one tenant a model")
            owner[model] = name
    namespaces = [namespace_of(name, t) for name, t in tenants.items()]
    if len(set(namespaces)) != len(namespaces):
        raise ValueError("two tenants share a namespace; each tenant needs its own")
    return tenants


def namespace_of(name: str, tenant: TenantSettings) -> str:
    return tenant.namespace or f"relctl-{name}"


def tenant_of(tenants: Tenants, model: str) -> str | None:
    """The tenant owning `model`, or None."""
    return next((name for name, t in tenants.items() if model in t.models), None)

