"""Webhooks against a real local HTTP receiver: signature, idempotency key, retries, dead letters."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import aiohttp
import pytest

from gridsentinel.alerts.delivery.config import CapSettings, Match, ReceiversFile, Retry
from gridsentinel.alerts.delivery.config import Receiver as ReceiverConfig
from gridsentinel.alerts.delivery.service import AlertDelivery
from gridsentinel.alerts.delivery.signing import verify
from gridsentinel.alerts.delivery.webhook import DeliveryResult, Payload, WebhookSender
from gridsentinel.core.records import DeadLetter

from .conftest import Receiver, case_event

pytestmark = pytest.mark.unit
SECRET = "test-secret-0123456789"


def config(url: str, **overrides: object) -> ReceiverConfig:
    base: dict[str, object] = {
        "name": "district",
        "url": url,
        "secret": SECRET,
        "retry": Retry(max_attempts=4, initial_backoff_s=1, max_backoff_s=3),
    }
    base.update(overrides)
    return ReceiverConfig(**base)  # type: ignore[arg-type]


def run_send(
    receiver_cfg: ReceiverConfig, payload: Payload
) -> tuple[DeliveryResult, list[float], list[DeadLetter]]:
    sleeps: list[float] = []
    letters: list[DeadLetter] = []

    async def fake_sleep(seconds: float) -> None:  # backoff is asserted, not waited for
        sleeps.append(seconds)

    async def main() -> DeliveryResult:
        async with aiohttp.ClientSession() as client:
            sender = WebhookSender(client, on_dead_letter=letters.append, sleep=fake_sleep)
            return await sender.send(receiver_cfg, payload, SECRET)

    return asyncio.run(main()), sleeps, letters


def payload() -> Payload:
    event = case_event()
    return Payload(event.event_id, event.type, event.to_json(), "application/json")


def test_signed_delivery_verifies_at_the_receiver(receiver: Receiver) -> None:
    result, sleeps, letters = run_send(config(receiver.url), payload())
    assert result.ok and result.attempts == 1 and result.status == 200 and not sleeps and not letters
    [got] = receiver.received
    h = got.headers
    assert got.body == payload().body and json.loads(got.body)["event_id"] == "c1:1"
    assert verify(
        SECRET, got.body, h["x-gridsentinel-timestamp"], h["x-gridsentinel-signature"], now=time.time()
    )
    assert not verify(
        "another-secret-000000",
        got.body,
        h["x-gridsentinel-timestamp"],
        h["x-gridsentinel-signature"],
        now=time.time(),
    )
    assert h["idempotency-key"] == "c1:1" and h["x-gridsentinel-event"] == "open"
    assert h["content-type"] == "application/json" and h["x-gridsentinel-delivery-attempt"] == "1"


def test_retries_with_exponential_backoff_then_succeeds(receiver: Receiver) -> None:
    receiver.statuses = [500, 503, 429]
    result, sleeps, letters = run_send(config(receiver.url), payload())
    assert result.ok and result.attempts == 4 and not letters
    assert sleeps == [1.0, 2.0, 3.0]  # 1, 2, 4 capped at 3
    assert [r.headers["x-gridsentinel-delivery-attempt"] for r in receiver.received] == ["1", "2", "3", "4"]
    assert {r.headers["idempotency-key"] for r in receiver.received} == {"c1:1"}
    for r in receiver.received:  # every attempt is signed on its own
        assert verify(
            SECRET,
            r.body,
            r.headers["x-gridsentinel-timestamp"],
            r.headers["x-gridsentinel-signature"],
            now=time.time(),
        )


def test_dead_letter_after_the_last_try(receiver: Receiver) -> None:
    receiver.statuses = [500] * 10
    result, sleeps, letters = run_send(config(receiver.url), payload())
    assert not result.ok and result.attempts == 4 and result.status == 500 and len(receiver.received) == 4
    assert sleeps == [1.0, 2.0, 3.0]
    [letter] = letters
    assert letter.reason == "webhook_failed" and letter.origin == "webhook:district"
    assert "4 attempt(s)" in letter.detail and "HTTP 500" in letter.detail
    assert base64.b64decode(letter.payload_b64) == payload().body


def test_client_errors_are_not_retried(receiver: Receiver) -> None:
    receiver.statuses = [401]
    result, sleeps, letters = run_send(config(receiver.url), payload())
    assert not result.ok and result.attempts == 1 and sleeps == [] and len(letters) == 1


def test_retry_after_is_honoured_up_to_the_cap(receiver: Receiver) -> None:
    receiver.statuses = [429]
    receiver.extra_headers = {"Retry-After": "2"}
    result, sleeps, _ = run_send(config(receiver.url), payload())
    assert result.ok and sleeps == [2.0]


def test_unreachable_receiver_is_retried_then_dead_lettered(receiver: Receiver) -> None:
    url = "http://127.0.0.1:1/hooks"  # nothing listens on port 1
    result, sleeps, letters = run_send(
        config(url, retry=Retry(max_attempts=2, initial_backoff_s=0.5)), payload()
    )
    assert not result.ok and result.status is None and result.attempts == 2 and sleeps == [0.5]
    assert "ClientConnectorError: Cannot connect to host 127.0.0.1:1" in letters[0].detail


def test_alert_delivery_routes_by_district_category_and_severity(receiver: Receiver) -> None:
    district = config(receiver.url, name="district", match=Match(grid_prefixes=("320582",)))
    fire = config(
        receiver.url.replace("/hooks/gs", "/cap"),
        name="fire",
        format="cap",
        match=Match(categories=("event:L005",), min_severity="alarm"),
    )
    elsewhere = config(
        receiver.url.replace("/hooks/gs", "/other"), name="elsewhere", match=Match(grid_prefixes=("110101",))
    )
    cfg = ReceiversFile(
        version="t",
        receivers=[district, fire, elsewhere],
        cap=CapSettings(emergency_categories={"event:L005": "Fire"}),
    )

    async def main() -> list[list[DeliveryResult]]:
        async with aiohttp.ClientSession() as client:
            delivery = AlertDelivery(
                cfg, webhook=WebhookSender(client), event_names={"event:L005": "fire or smoke"}
            )
            return [
                await delivery.deliver(case_event("c1:1")),
                await delivery.deliver(case_event("c1:2", type="evidence", notify=False)),
                await delivery.deliver(case_event("c2:1", category_key="event:0103", severity="warning")),
            ]

    first, silent, dumping = asyncio.run(main())
    assert sorted(r.receiver for r in first) == ["district", "fire"] and all(r.ok for r in first)
    assert silent == []  # notify unset: nobody is told
    assert [r.receiver for r in dumping] == ["district"]
    by_path = {(r.path, r.headers["idempotency-key"]): r for r in receiver.received}
    assert set(by_path) == {("/hooks/gs", "c1:1"), ("/cap", "c1:1"), ("/hooks/gs", "c2:1")}
    cap = by_path[("/cap", "c1:1")]
    assert cap.headers["content-type"] == "application/cap+xml" and b"<cap:alert" in cap.body
    assert verify(
        SECRET,
        cap.body,
        cap.headers["x-gridsentinel-timestamp"],
        cap.headers["x-gridsentinel-signature"],
        now=time.time(),
    )
    assert by_path[("/hooks/gs", "c1:1")].headers["content-type"] == "application/json"


def test_the_json_body_is_the_event_as_read_and_cap_is_still_built(receiver: Receiver) -> None:
    """``deliver(event, body)``: JSON receivers get ``body`` byte for byte (the record read from
    gs.case-events, a newer producer's keys included), CAP receivers the CAP document built from the event."""
    json_receiver = config(receiver.url, name="district")
    cap_receiver = config(receiver.url.replace("/hooks/gs", "/cap"), name="fire", format="cap")
    cfg = ReceiversFile(version="t", receivers=[json_receiver, cap_receiver],
                        cap=CapSettings(emergency_categories={"event:L005": "Fire"}))
    event = case_event("c9:1")
    as_read = event.to_json()[:-1] + b',"zz_added_later":1}'

    async def main() -> list[DeliveryResult]:
        async with aiohttp.ClientSession() as client:
            delivery = AlertDelivery(cfg, webhook=WebhookSender(client), event_names={"event:L005": "fire"})
            return await delivery.deliver(event, as_read)

    results = asyncio.run(main())
    assert sorted(r.receiver for r in results) == ["district", "fire"] and all(r.ok for r in results)
    by_path = {r.path: r for r in receiver.received}
    assert by_path["/hooks/gs"].body == as_read
    assert verify(SECRET, as_read, by_path["/hooks/gs"].headers["x-gridsentinel-timestamp"],
                  by_path["/hooks/gs"].headers["x-gridsentinel-signature"], now=time.time())
    assert by_path["/cap"].headers["content-type"] == "application/cap+xml" and b"<cap:alert" in by_path["/cap"].body


def test_a_receiver_slower_than_its_timeout_is_retried(receiver: Receiver) -> None:
    receiver.delays = [2.0]  # the first attempt outlasts the 0.5 s timeout; the second is answered at once
    result, sleeps, letters = run_send(config(receiver.url, timeout_s=0.5), payload())
    assert result.ok and result.attempts == 2 and sleeps == [1] and not letters
    assert [r.headers["x-gridsentinel-delivery-attempt"] for r in receiver.received] == ["1", "2"]
