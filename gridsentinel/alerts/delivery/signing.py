"""Webhook signatures: HMAC-SHA256 over ``<timestamp>.<raw body>`` (pure).

The timestamp is signed with the body so a captured request cannot be replayed later with a fresh
timestamp; receivers reject timestamps outside their tolerance and drop repeated ``Idempotency-Key``s.

>>> sig = sign("0123456789abcdef", 1700000000, b'{"a":1}')
>>> sig.startswith("sha256=")
True
>>> verify("0123456789abcdef", b'{"a":1}', "1700000000", sig, now=1700000010)
True
>>> verify("0123456789abcdef", b'{"a":2}', "1700000000", sig, now=1700000010)
False
>>> verify("0123456789abcdef", b'{"a":1}', "1700000000", sig, now=1700009999)  # too old
False
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-GridSentinel-Signature"
TIMESTAMP_HEADER = "X-GridSentinel-Timestamp"
EVENT_HEADER = "X-GridSentinel-Event"
ATTEMPT_HEADER = "X-GridSentinel-Delivery-Attempt"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, ``f"{timestamp}."`` + body)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: str, body: bytes, timestamp: str, signature: str, *, now: float, tolerance_s: float = 300.0
) -> bool:
    """What a receiver does: check the timestamp is recent and the signature matches (constant time)."""
    if not timestamp.isdigit() or abs(now - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)
