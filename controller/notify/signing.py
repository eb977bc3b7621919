"""Signed deliveries in MLflow's webhook scheme, under relctl's header names.

The signature is `v1,` + base64(HMAC-SHA256(secret, f"{delivery_id}.{timestamp}.{body}")), the
timestamp unix seconds at sending. A receiver checks it, checks the timestamp is fresh, and
drops a delivery id it has already handled: delivery is at least once (see deliver.py).
"""
from __future__ import annotations

from collections.abc import Mapping

from controller.registry.signature import SignatureError, SignatureVerifier, sign

DELIVERY_ID_HEADER = "X-Relctl-Delivery-Id"
TIMESTAMP_HEADER = "X-Relctl-Timestamp"
SIGNATURE_HEADER = "X-Relctl-Signature"
EVENT_HEADER = "X-Relctl-Event"


def signed_headers(secret: str, delivery_id: str, timestamp: int, body: bytes, event: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json", DELIVERY_ID_HEADER: delivery_id,
               TIMESTAMP_HEADER: str(timestamp), EVENT_HEADER: event}
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, delivery_id, str(timestamp), body)
    return headers


class DeliveryVerifier(SignatureVerifier):
    """For receivers (and the tests): signature, freshness, and a delivery id seen before.

    The same checks as relctl's own MLflow webhook receiver, on relctl's header names."""

    def verify(self, headers: Mapping[str, str], body: bytes) -> str:
        for name in (DELIVERY_ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER):
            if not _get(headers, name):
                raise SignatureError(f"missing header {name}")
        renamed = {"X-MLflow-Delivery-Id": _get(headers, DELIVERY_ID_HEADER),
                   "X-MLflow-Timestamp": _get(headers, TIMESTAMP_HEADER),
                   "X-MLflow-Signature": _get(headers, SIGNATURE_HEADER)}
        return super().verify(renamed, body)


def _get(headers: Mapping[str, str], name: str) -> str:
    return headers.get(name) or headers.get(name.lower()) or ""


__all__ = ["DeliveryVerifier", "SignatureError", "signed_headers", "DELIVERY_ID_HEADER", "TIMESTAMP_HEADER",
           "SIGNATURE_HEADER", "EVENT_HEADER"]
