import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.registry.signature import (
    DELIVERY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError,
    SignatureVerifier, sign)

SECRET = "s3cret"
NOW = 1_800_000_000
BODY = b'{"entity": "model_version", "action": "created", "data": {}}'


def headers(body=BODY, secret=SECRET, delivery="d-1", ts=NOW):
    return {DELIVERY_ID_HEADER: delivery, TIMESTAMP_HEADER: str(ts),
            SIGNATURE_HEADER: sign(secret, delivery, str(ts), body)}


def verifier(now=NOW, **kw):
    return SignatureVerifier(SECRET, clock=lambda: now, **kw)


def test_sign_matches_mlflows_own_signer():
    from mlflow.webhooks.delivery import _generate_hmac_signature
    assert sign(SECRET, "d", "12", BODY) == _generate_hmac_signature(
        SECRET, "d", "12", BODY.decode())


def test_valid_signature_returns_delivery_id():
    assert verifier().verify(headers(), BODY) == "d-1"


@pytest.mark.parametrize("hdrs, body, reason", [
    (headers(secret="other"), BODY, "does not match"),
    (headers(), BODY + b" ", "does not match"),
    (headers(ts=NOW - 301), BODY, "stale"),
    (headers(ts=NOW + 301), BODY, "stale"),
    ({**headers(), TIMESTAMP_HEADER: "yesterday"}, BODY, "not a unix timestamp"),
    ({k: v for k, v in headers().items() if k != SIGNATURE_HEADER}, BODY, SIGNATURE_HEADER),
    ({k: v for k, v in headers().items() if k != DELIVERY_ID_HEADER}, BODY, DELIVERY_ID_HEADER),
    ({**headers(), SIGNATURE_HEADER: "v1,AAAA"}, BODY, "does not match"),
])
def test_rejections_say_why(hdrs, body, reason):
    with pytest.raises(SignatureError, match=reason):
        verifier().verify(hdrs, body)


def test_replayed_delivery_is_rejected_but_forget_allows_retry():
    v = verifier()
    v.verify(headers(), BODY)
    with pytest.raises(SignatureError, match="replay"):
        v.verify(headers(), BODY)
    v.forget("d-1")
    assert v.verify(headers(), BODY) == "d-1"


def test_bad_signature_does_not_burn_the_delivery_id():
    v = verifier()
    with pytest.raises(SignatureError):
        v.verify(headers(secret="other"), BODY)
    assert v.verify(headers(), BODY) == "d-1"


def test_old_delivery_ids_are_forgotten_and_memory_is_bounded():
    clock = [NOW]
    v = SignatureVerifier(SECRET, clock=lambda: clock[0], max_age_s=10, max_remembered=3)
    for i in range(5):
        v.verify(headers(delivery=f"d{i}"), BODY)
    assert len(v._seen) <= 3
    clock[0] = NOW + 25
    v.verify(headers(delivery="late", ts=NOW + 25), BODY)
    assert list(v._seen) == ["late"]


def test_lowercase_header_names_are_accepted():
    lower = {k.lower(): val for k, val in headers().items()}
    assert verifier().verify(lower, BODY) == "d-1"


def test_empty_secret_is_refused():
    with pytest.raises(ValueError, match="secret"):
        SignatureVerifier("")


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=512), delivery=st.uuids(), flip=st.integers(min_value=0))
def test_any_signed_body_verifies_and_any_flipped_byte_fails(body, delivery, flip):
    hdrs = headers(body=body, delivery=str(delivery))
    assert verifier().verify(hdrs, body) == str(delivery)
    if body:
        i = flip % len(body)
        tampered = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1:]
        with pytest.raises(SignatureError, match="does not match"):
            verifier().verify(hdrs, tampered)
