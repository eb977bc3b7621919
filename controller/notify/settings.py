"""Who is notified, and how. Secrets (HMAC keys, Slack webhook URLs) come from the environment:
a subscriber names the variable, never the value, so a dumped config shows no secret."""
from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Event kinds a subscriber gets by default: phase changes (a transition carries the judge's
# verdict when one caused it), the release's creation, and a human acting on the champion.
DEFAULT_EVENTS = ("created", "transition", "verdict", "manual_rollback", "champion_moved")
ENV_NAME = r"^[A-Z_][A-Z0-9_]*$"


class Subscriber(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    format: Literal["webhook", "slack"] = "webhook"
    url: str = Field("", pattern=r"^(https?://\S+)?$")
    url_env: str = Field("", pattern=rf"({ENV_NAME})|^$")      # e.g. a Slack incoming-webhook URL
    secret_env: str = Field("", pattern=rf"({ENV_NAME})|^$")   # HMAC key of a webhook subscriber
    events: list[str] = Field(default_factory=lambda: list(DEFAULT_EVENTS))
    models: list[str] = Field(default_factory=list)            # empty: every model

    @model_validator(mode="after")
    def _one_url(self) -> "Subscriber":
        if bool(self.url) == bool(self.url_env):
            raise ValueError(f"subscriber {self.name!r}: give exactly one of url, url_env")
        if self.format == "webhook" and not self.secret_env:
            raise ValueError(f"subscriber {self.name!r}: a webhook needs secret_env (its HMAC key's variable)")
        return self

    def wants(self, kind: str, model: str) -> bool:
        return kind in self.events and (not self.models or model in self.models)

    def target(self) -> str:
        """The URL to post to, read from the environment at send time when url_env is set."""
        return self.url or _env(self.url_env, f"{self.name}.url_env")

    def secret(self) -> str:
        return _env(self.secret_env, f"{self.name}.secret_env") if self.secret_env else ""


class NotificationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subscribers: list[Subscriber] = Field(default_factory=list)
    # Base of the links in messages (the release page, promote/abort); default: the API's own address.
    public_url: str = Field("", pattern=r"^(https?://\S+)?$")
    timeout_seconds: float = Field(5.0, gt=0, le=60)
    backoff_seconds: float = Field(2.0, gt=0)         # first retry; doubled each attempt
    backoff_max_seconds: float = Field(900.0, gt=0)
    max_attempts: int = Field(40, ge=1)               # then the row is marked failed (kept, visible)

    @model_validator(mode="after")
    def _unique_names(self) -> "NotificationSettings":
        names = [s.name for s in self.subscribers]
        if len(names) != len(set(names)):
            raise ValueError(f"subscriber names must be unique: {names}")
        return self

    def check_environment(self) -> None:
        """Fail at start-up, naming the variable, when a secret or URL the settings name is unset."""
        for s in self.subscribers:
            s.target()
            s.secret()


class MissingSecret(ValueError):
    pass


def _env(name: str, field: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise MissingSecret(f"notifications: {field} names {name}, which is not set in the environment")
    return value
