"""Controller settings: a YAML file and/or RELCTL_* environment variables. Secrets come only from the environment."""
from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class WatchedModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    policy: str = "default"


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workdir: Path = Path(".relctl")
    db_url: str = ""                                  # default: SQLite in workdir
    mlflow_uri: str = "http://127.0.0.1:5000"
    gateway_admin_url: str = "http://127.0.0.1:8080"
    prometheus_url: str = "http://127.0.0.1:9090"
    pool_device: str = Field("cpu", pattern="^(cpu|gpu)$")
    models: list[WatchedModel] = Field(default_factory=list)
    tick_seconds: float = Field(2.0, gt=0)
    poll_seconds: float = Field(5.0, gt=0)
    webhook_url: str = ""                             # this API's /webhooks/mlflow as MLflow reaches it
    api_host: str = "127.0.0.1"
    api_port: int = 8000

    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{(self.workdir / 'relctl.db').resolve()}"


class SettingsError(ValueError):
    pass


def load_settings(path: str | Path | None = None, **overrides) -> Settings:
    raw: dict = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise SettingsError(f"config file not found: {p}")
        raw = yaml.safe_load(p.read_text()) or {}
    for key in Settings.model_fields:
        env = os.environ.get(f"RELCTL_{key.upper()}")
        if env is not None and key != "models":
            raw[key] = env
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise SettingsError(f"invalid settings: {exc}") from None


def secret(name: str) -> str:
    """Read a secret from the environment (never from files that get logged)."""
    return os.environ.get(name, "")
