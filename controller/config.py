"""Controller settings (pydantic-settings): a YAML file and/or RELCTL_* environment variables.

Precedence: explicit overrides (CLI flags) > environment > YAML file > defaults. Secrets
(API tokens, the gateway token, the webhook secret) are read only from the environment by
`secret()` and are never settings fields, so they never appear in a dumped config or a log.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, YamlConfigSettingsSource

from controller.backends import check_name
from controller.k8s.settings import KubernetesSettings
from controller.notify.settings import NotificationSettings
from controller.tenants import TenantSettings, check_tenants


class WatchedModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    policy: str = "default"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RELCTL_", extra="forbid", env_nested_delimiter="__")

    workdir: Path = Path(".relctl")
    db_url: str = ""                                  # default: SQLite in workdir
    mlflow_uri: str = "http://127.0.0.1:5000"
    gateway_admin_url: str = "http://127.0.0.1:8080"
    prometheus_url: str = "http://127.0.0.1:9090"
    pool_device: str = Field("cpu", pattern="^(cpu|gpu)$")
    # Backends by name (controller/backends.py); an unknown name fails here with the known ones.
    pool: str = "local-vllm"
    router: str = "embedded"
    metrics: str = "prometheus"
    registry: str = "mlflow"
    quantize_runner: str = "local"                    # local: a subprocess here; kubernetes: a Job on the GPU pool
    metrics_batch_seconds: float = Field(0.5, gt=0)   # prometheus-batched: the snapshot's largest age
    models: list[WatchedModel] = Field(default_factory=list)
    tick_seconds: float = Field(2.0, gt=0)
    poll_seconds: float = Field(5.0, gt=0)
    reconcile_workers: int = Field(8, ge=1, le=256)   # releases reconciled at the same time
    webhook_url: str = ""                             # this API's /webhooks/mlflow as MLflow reaches it
    notifications: NotificationSettings = Field(default_factory=NotificationSettings)
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)   # pool/router on a cluster
    # tenant -> its models (and namespace); tokens "ROLE@TENANT:TOKEN" see only those (controller/tenants.py)
    tenants: dict[str, TenantSettings] = Field(default_factory=dict)
    api_host: str = "127.0.0.1"
    api_port: int = 8000

    @field_validator("pool", "router", "metrics", "registry", "quantize_runner")
    @classmethod
    def _known_backend(cls, name: str, info) -> str:
        return check_name(info.field_name.removesuffix("_runner"), name)

    @field_validator("tenants")
    @classmethod
    def _tenants(cls, tenants: dict[str, TenantSettings]) -> dict[str, TenantSettings]:
        return dict(check_tenants(tenants))

    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{(self.workdir / 'relctl.db').resolve()}"

    @classmethod
    def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, YamlConfigSettingsSource(settings_cls)  # yaml_file from model_config


class SettingsError(ValueError):
    pass


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    if path and not Path(path).is_file():
        raise SettingsError(f"config file not found: {path}")
    cls = Settings
    if path:
        class FromFile(Settings):
            model_config = SettingsConfigDict(yaml_file=str(path))
        cls = FromFile
    try:
        return cls(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise SettingsError(f"invalid settings: {exc}") from None
    except ValueError as exc:  # a YAML file that does not parse
        raise SettingsError(f"invalid settings file {path}: {exc}") from None


def secret(name: str) -> str:
    """Read a secret from the environment (never from files that get logged)."""
    return os.environ.get(name, "")
