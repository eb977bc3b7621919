"""Receiver for MLflow model-registry webhooks, and their setup in MLflow (>= 3.3).

MLflow fires a webhook only after its per-worker cache refreshes (60 s by default)
and drops deliveries that fail for long, so the controller polls as well: the
webhook makes reactions fast, polling makes them certain.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Collection

from typing import Literal

from fastapi import APIRouter, Request
from prometheus_client import Counter
from pydantic import BaseModel
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from controller.registry.client_errors import configure_fast_fail, translated
from controller.registry.events import PayloadError, parse_webhook_payload
from controller.registry.signature import SignatureError, SignatureVerifier
from controller.registry.types import RegistryError, RegistryEvent
from controller.registry.versions import VersionError, canonical_version

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/mlflow"
MAX_BODY_BYTES = 1024 * 1024      # MLflow's registry payloads are a few KiB
DELIVERIES = Counter("relctl_webhook_deliveries", "MLflow webhook deliveries by outcome: accepted, ignored "
                     "(genuine, nothing to do), rejected (signature), malformed, too_large, failed", ["outcome"])
_REFUSALS = {400: "malformed", 401: "rejected", 413: "too_large", 500: "failed"}
WEBHOOK_EVENTS = (
    "model_version.created",
    "model_version_tag.set",
    "model_version_tag.deleted",
    "model_version_alias.created",
    "model_version_alias.deleted",
)


class WebhookAck(BaseModel):
    status: Literal["accepted", "ignored"]
    delivery_id: str
    reason: str | None = None


class WebhookError(BaseModel):
    detail: str


_RESPONSES = {code: {"model": WebhookError, "description": text} for code, text in (
    (400, "malformed payload"), (401, "bad, stale or replayed signature"),
    (413, "body over the size limit"), (500, "handler failed; MLflow may retry"))}


def webhook_router(secret: str, on_event: Callable[[RegistryEvent], None], *,
                   watched: Collection[str] | Callable[[str], bool] | None = None,
                   max_body_bytes: int = MAX_BODY_BYTES, max_age_s: float = 300.0,
                   clock: Callable[[], float] = time.time) -> APIRouter:
    """POST /webhooks/mlflow: 413 on a body over `max_body_bytes` (before it is read whole),
    401 on a bad, stale or replayed signature, 400 on a malformed payload, 200 otherwise.

    Genuine deliveries relctl does not act on are acknowledged with status "ignored" and a
    reason (a 5xx would make MLflow retry them for nothing): a model outside `watched`
    (None: every model), a version not in MLflow's canonical form, an unknown model or
    version. `on_event` runs in a worker thread."""
    verifier = SignatureVerifier(secret, max_age_s=max_age_s, clock=clock)
    is_watched = _watch_predicate(watched)
    router = APIRouter()

    @router.post(WEBHOOK_PATH, summary="Receive an MLflow model-registry webhook",
                 response_model=WebhookAck, responses=_RESPONSES)
    async def receive(request: Request) -> JSONResponse:
        try:
            body = await read_capped(request, max_body_bytes)
        except BodyTooLarge as err:
            log.warning("webhook rejected", extra={"reason": str(err)})
            return _reply(413, str(err))
        try:
            delivery_id = verifier.verify(request.headers, body)
        except SignatureError as err:
            log.warning("webhook rejected", extra={"reason": str(err)})
            return _reply(401, f"invalid webhook signature: {err}")
        try:
            event = parse_webhook_payload(json.loads(body))
        except (ValueError, RecursionError, PayloadError) as err:  # JSONDecodeError is a ValueError
            log.warning("webhook payload malformed", extra={"delivery_id": delivery_id})
            return _reply(400, f"malformed webhook payload: {str(err)[:200]}")
        if event is None:
            return _ack("ignored", delivery_id)
        return await _handle(event, delivery_id, is_watched, on_event, verifier)

    return router


async def _handle(event: RegistryEvent, delivery_id: str, is_watched: Callable[[str], bool],
                  on_event: Callable[[RegistryEvent], None], verifier: SignatureVerifier) -> JSONResponse:
    try:
        event = _checked(event, is_watched)
        await run_in_threadpool(on_event, event)
    except (Ignored, RegistryError) as err:   # RegistryError: unknown model or version
        return _ignored(event, delivery_id, str(err))
    except Exception:
        verifier.forget(delivery_id)  # MLflow retries 5xx with the same delivery id
        log.exception("webhook handler failed", extra={"delivery_id": delivery_id})
        return _reply(500, "handler failed; the delivery can be retried")
    log.info("webhook accepted", extra={"delivery_id": delivery_id, "kind": str(event.kind),
                                        "model": event.name, "version": event.version})
    return _ack("accepted", delivery_id)


class Ignored(Exception):
    """A genuine delivery relctl does not act on; the message says why."""


def _checked(event: RegistryEvent, is_watched: Callable[[str], bool]) -> RegistryEvent:
    """The event with its version in canonical form, or Ignored."""
    if not is_watched(event.name):
        raise Ignored(f"model {event.name[:200]!r} is not watched by this controller")
    if event.version is None:
        return event
    try:
        return dataclasses.replace(event, version=canonical_version(event.version))
    except VersionError as err:
        raise Ignored(str(err)) from None


def _ignored(event: RegistryEvent, delivery_id: str, reason: str) -> JSONResponse:
    log.warning("webhook ignored", extra={"delivery_id": delivery_id, "kind": str(event.kind),
                                          "model": event.name[:200], "reason": reason})
    return _ack("ignored", delivery_id, reason)


def _watch_predicate(watched) -> Callable[[str], bool]:
    if watched is None:
        return lambda name: True
    if callable(watched):
        return watched
    names = frozenset(watched)
    return names.__contains__


class BodyTooLarge(Exception):
    pass


async def read_capped(request: Request, limit: int) -> bytes:
    """The request body, or BodyTooLarge as soon as it is known to exceed `limit` bytes:
    from Content-Length before reading anything, else while the chunks arrive."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body of {int(declared)} bytes is over the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def ensure_webhook(tracking_uri: str, url: str, secret: str, name: str = "relctl",
                   events: tuple[str, ...] = WEBHOOK_EVENTS) -> str:
    """Creates the webhook `name` in MLflow, or brings an existing one up to date
    (url, events, secret, active). Returns its id. Idempotent."""
    if not secret:
        raise RegistryError("webhook secret must not be empty")
    if not url.startswith(("http://", "https://")):
        raise RegistryError(f"webhook url must be http(s), got {url!r}")
    configure_fast_fail()
    from mlflow import MlflowClient
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    if not hasattr(client, "create_webhook"):
        raise RegistryError("MLflow >= 3.3 is needed for webhooks")
    with translated(tracking_uri, f"setting up webhook '{name}'"):
        existing = _find_webhook(client, name)
        if existing is None:
            hook = client.create_webhook(name=name, url=url, events=list(events),
                                         secret=secret, description="relctl release controller")
        else:
            hook = client.update_webhook(existing.webhook_id, url=url, events=list(events),
                                         secret=secret, status="ACTIVE")
    log.info("webhook ensured", extra={"webhook_id": hook.webhook_id, "url": url,
                                       "created": existing is None})
    return hook.webhook_id


def _find_webhook(client, name: str):
    token = None
    while True:
        page = client.list_webhooks(max_results=100, page_token=token)
        for hook in page:
            if hook.name == name:
                return hook
        token = page.token
        if not token:
            return None


def _ack(status: str, delivery_id: str, reason: str | None = None) -> JSONResponse:
    DELIVERIES.labels(status).inc()
    body = {"status": status, "delivery_id": delivery_id}
    return JSONResponse(body if reason is None else {**body, "reason": reason})


def _reply(status: int, detail: str) -> JSONResponse:
    DELIVERIES.labels(_REFUSALS[status]).inc()
    return JSONResponse({"detail": detail}, status_code=status)
