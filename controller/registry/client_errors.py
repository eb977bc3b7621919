"""Fail-fast client settings and translation of MLflow errors into RegistryError."""
from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator

from controller.registry.types import RegistryError

# MLflow's client retries for ~4 minutes when the server is down; a controller tick
# must learn within seconds. These are process-wide env vars that MLflow reads on
# every request, so they are set only where the operator has not set them.
FAST_FAIL_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",  # a controller must not phone home
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # stdout carries the CLI's JSON
}

_NOT_FOUND = {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"}
_EXISTS = {"RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"}


def configure_fast_fail() -> None:
    for key, value in FAST_FAIL_ENV.items():
        os.environ.setdefault(key, value)


def error_code(exc: BaseException) -> str:
    return str(getattr(exc, "error_code", ""))


def is_not_found(exc: BaseException) -> bool:
    return error_code(exc) in _NOT_FOUND


def is_already_exists(exc: BaseException) -> bool:
    return error_code(exc) in _EXISTS


def redact(text: str) -> str:
    """Removes user:password@ from any URL in `text` (secrets are never logged)."""
    return re.sub(r"(\w+://)[^/@\s]+@", r"\1***@", text)


@contextlib.contextmanager
def translated(uri: str, what: str) -> Iterator[None]:
    """Any failure other than RegistryError becomes RegistryError naming the server."""
    try:
        yield
    except RegistryError:
        raise
    except Exception as exc:  # MlflowException, requests and OS errors alike
        detail = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise RegistryError(redact(f"MLflow at {uri}: {what} failed: {detail}")) from exc
