"""Webhook delivery: signed POSTs with retries, exponential backoff and a dead letter after the last try.

Every attempt carries ``X-GridSentinel-Timestamp`` and ``X-GridSentinel-Signature`` (re-signed per
attempt, so receivers can keep a short tolerance), ``Idempotency-Key`` (the event id: the same for every
attempt, so receivers drop repeats), ``X-GridSentinel-Event`` and ``X-GridSentinel-Delivery-Attempt``.
2xx is success; network errors, timeouts, 408, 429 and 5xx are retried (``Retry-After`` is honoured up
to the backoff cap); any other status is permanent and dead-letters at once. Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from gridsentinel.alerts.delivery.config import Receiver
from gridsentinel.alerts.delivery.signing import (
    ATTEMPT_HEADER,
    EVENT_HEADER,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)
from gridsentinel.core.records import DeadLetter

DeadLetterSink = Callable[[DeadLetter], Awaitable[None] | None]
RETRYABLE = frozenset({408, 429})
USER_AGENT = "GridSentinel-Webhook/1"


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    receiver: str
    event_id: str
    ok: bool
    attempts: int
    status: int | None  # last HTTP status, None after a network error
    error: str = ""


@dataclass(frozen=True, slots=True)
class Payload:
    """What is sent: the raw body and its content type."""

    event_id: str
    event_type: str
    body: bytes
    content_type: str


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


class WebhookSender:
    """Sends payloads to receivers. ``sleep`` and ``clock`` are injectable for tests."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        on_dead_letter: DeadLetterSink | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._on_dead_letter = on_dead_letter
        self._sleep = sleep
        self._clock = clock

    async def send(self, receiver: Receiver, payload: Payload, secret: str) -> DeliveryResult:
        policy = receiver.retry
        status: int | None = None
        error = ""
        attempt = 0
        for attempt in range(1, policy.max_attempts + 1):
            ts = int(self._clock())
            headers = {
                "Content-Type": payload.content_type,
                "User-Agent": USER_AGENT,
                TIMESTAMP_HEADER: str(ts),
                SIGNATURE_HEADER: sign(secret, ts, payload.body),
                IDEMPOTENCY_HEADER: payload.event_id,
                EVENT_HEADER: payload.event_type,
                ATTEMPT_HEADER: str(attempt),
            }
            wait: float | None = None
            try:
                response = await self._client.post(
                    receiver.url,
                    content=payload.body,
                    headers=headers,
                    timeout=receiver.timeout_s,
                    follow_redirects=False,
                )
            except httpx.TransportError as exc:
                status, error = None, f"{type(exc).__name__}: {exc}" or type(exc).__name__
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return DeliveryResult(receiver.name, payload.event_id, True, attempt, status)
                error = f"HTTP {status}"
                if not (status in RETRYABLE or status >= 500):
                    break  # permanent: the receiver refuses this request, retrying will not help
                wait = _retry_after(response)
            if attempt < policy.max_attempts:
                delay = policy.delay(attempt)
                if wait is not None:
                    delay = min(max(delay, wait), policy.max_backoff_s)
                await self._sleep(delay)
        result = DeliveryResult(receiver.name, payload.event_id, False, attempt, status, error)
        await self._dead_letter(receiver, payload, result)
        return result

    async def _dead_letter(self, receiver: Receiver, payload: Payload, result: DeliveryResult) -> None:
        if self._on_dead_letter is None:
            return
        letter = DeadLetter(
            reason="webhook_failed",
            detail=f"receiver {receiver.name} ({receiver.url}): event {payload.event_id} not delivered after "
            f"{result.attempts} attempt(s); last error: {result.error}",
            origin=f"webhook:{receiver.name}",
            received_at=self._clock(),
            payload_b64=base64.b64encode(payload.body).decode(),
        )
        outcome = self._on_dead_letter(letter)
        if inspect.isawaitable(outcome):
            await outcome
