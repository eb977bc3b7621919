"""Receiver for MLflow model-registry webhooks, and their setup in MLflow (>= 3.3).

MLflow fires a webhook only after its per-worker cache refreshes (60 s by default)
and drops deliveries that fail for long, so the controller polls as well: the
webhook makes reactions fast, polling makes them certain.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from controller.registry.client_errors import configure_fast_fail, translated
from controller.registry.events import PayloadError, parse_webhook_payload
from controller.registry.signature import SignatureError, SignatureVerifier
from controller.registry.types import RegistryError, RegistryEvent

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/mlflow"
WEBHOOK_EVENTS = (
    "model_version.created",
    "model_version_tag.set",
    "model_version_tag.deleted",
    "model_version_alias.created",
    "model_version_alias.deleted",
)


def webhook_router(secret: str, on_event: Callable[[RegistryEvent], None], *,
                   max_age_s: float = 300.0,
                   clock: Callable[[], float] = time.time) -> APIRouter:
    """POST /webhooks/mlflow: 401 on a bad, stale or replayed signature, 400 on a
    malformed payload, 200 otherwise; `on_event` runs in a worker thread."""
    verifier = SignatureVerifier(secret, max_age_s=max_age_s, clock=clock)
    router = APIRouter()

    @router.post(WEBHOOK_PATH, summary="Receive an MLflow model-registry webhook")
    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        try:
            delivery_id = verifier.verify(request.headers, body)
        except SignatureError as err:
            log.warning("webhook rejected", extra={"reason": str(err)})
            return _reply(401, f"invalid webhook signature: {err}")
        try:
            event = parse_webhook_payload(json.loads(body))
        except (ValueError, PayloadError) as err:  # JSONDecodeError is a ValueError
            log.warning("webhook payload malformed", extra={"delivery_id": delivery_id})
            return _reply(400, f"malformed webhook payload: {err}")
        if event is None:
            return JSONResponse({"status": "ignored", "delivery_id": delivery_id})
        try:
            await run_in_threadpool(on_event, event)
        except Exception:
            verifier.forget(delivery_id)  # MLflow retries 5xx with the same delivery id
            log.exception("webhook handler failed", extra={"delivery_id": delivery_id})
            return _reply(500, "handler failed; the delivery can be retried")
        log.info("webhook accepted", extra={"delivery_id": delivery_id,
                                            "kind": str(event.kind), "model": event.name,
                                            "version": event.version})
        return JSONResponse({"status": "accepted", "delivery_id": delivery_id})

    return router


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


def _reply(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)
