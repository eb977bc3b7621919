"""Verification of MLflow webhook signatures (HMAC-SHA256), with replay protection.

MLflow signs f"{delivery_id}.{timestamp}.{body}" with the webhook secret and sends
`X-MLflow-Signature: v1,<base64 digest>`, `X-MLflow-Delivery-Id`, `X-MLflow-Timestamp`.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

SIGNATURE_HEADER = "X-MLflow-Signature"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
SIGNATURE_VERSION = "v1"


class SignatureError(Exception):
    """The request is not a genuine, fresh MLflow delivery; the message says why."""


def sign(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The header value MLflow would send for this body."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


class SignatureVerifier:
    """Checks signature, freshness and uniqueness of each delivery.

    Delivery ids are remembered for twice the accepted age, so a captured request
    can be replayed neither inside the window (seen id) nor after it (stale).
    """

    def __init__(self, secret: str, *, max_age_s: float = 300.0,
                 clock: Callable[[], float] = time.time, max_remembered: int = 100_000):
        if not secret:
            raise ValueError("webhook secret must not be empty")
        self._secret = secret
        self._max_age_s = max_age_s
        self._clock = clock
        self._max_remembered = max_remembered
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, headers: Mapping[str, str], body: bytes) -> str:
        """Returns the delivery id; raises SignatureError otherwise."""
        delivery_id = _required(headers, DELIVERY_ID_HEADER)
        timestamp = _required(headers, TIMESTAMP_HEADER)
        received = _required(headers, SIGNATURE_HEADER)
        self._check_fresh(timestamp)
        expected = sign(self._secret, delivery_id, timestamp, body)
        # MLflow may one day send several space-separated signatures (key rotation).
        if not any(hmac.compare_digest(expected.encode(), s.encode())
                   for s in received.split()):
            raise SignatureError("signature does not match (wrong secret or altered body)")
        self._remember(delivery_id)
        return delivery_id

    def forget(self, delivery_id: str) -> None:
        """Lets a delivery be retried, e.g. after the receiver failed to handle it."""
        with self._lock:
            self._seen.pop(delivery_id, None)

    def _check_fresh(self, timestamp: str) -> None:
        try:
            sent_at = int(timestamp)
        except ValueError:
            raise SignatureError(f"{TIMESTAMP_HEADER} is not a unix timestamp") from None
        age = self._clock() - sent_at
        if abs(age) > self._max_age_s:
            raise SignatureError(
                f"timestamp is {age:.0f} s off (more than {self._max_age_s:.0f} s): "
                "stale or clock skew")

    def _remember(self, delivery_id: str) -> None:
        now = self._clock()
        with self._lock:
            self._forget_old(now)
            if delivery_id in self._seen:
                raise SignatureError(f"delivery {delivery_id} was already received (replay)")
            self._seen[delivery_id] = now

    def _forget_old(self, now: float) -> None:
        horizon = now - 2 * self._max_age_s
        while self._seen and (next(iter(self._seen.values())) < horizon
                              or len(self._seen) >= self._max_remembered):
            self._seen.popitem(last=False)


def _required(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name) or headers.get(name.lower())
    if not value:
        raise SignatureError(f"missing header {name}")
    return value
