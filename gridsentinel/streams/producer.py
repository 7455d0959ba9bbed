"""A Kafka producer for an asyncio stage: librdkafka (confluent-kafka) underneath, an asyncio future per record.

The cases stage produces one case event per new case, a batch at a time, and must know when Kafka has each
one (only then may the outbox forget it and the detections be acked). Through Faust's aiokafka producer
that cost ~20 µs of Python per record and a tenth of the cases worker's CPU with a backlog
(``gridsentinel bench cases``, issue 15); librdkafka batches and sends in its own threads, and a produce
call costs a few µs. A thread of ours serves librdkafka's delivery reports and settles the futures on the
event loop.

Guarantees as the worker's other producers: acks from all replicas, idempotent (no duplicates from
retries, order kept per partition), and never give up on a record while Kafka is away (the futures wait).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer


class AsyncProducer:
    """``await produce(...)`` is not needed: :meth:`produce` queues the record at once and returns a future
    that completes when Kafka acknowledges it (or fails with ``KafkaException``)."""

    def __init__(self, bootstrap: str, client_id: str, *, linger_ms: int = 5) -> None:
        self._producer = Producer({
            "bootstrap.servers": bootstrap, "client.id": client_id, "acks": "all", "enable.idempotence": True,
            "linger.ms": linger_ms, "message.timeout.ms": 0,  # Kafka down means wait, not drop
        })
        self._stop = threading.Event()
        self._reports: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None], KafkaError | None]] = []
        self._poller = threading.Thread(target=self._poll, name=f"{client_id}-reports", daemon=True)
        self._poller.start()

    def produce(self, topic: str, key: bytes | None, value: bytes,
                headers: Sequence[tuple[str, bytes]] = ()) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def report(error: KafkaError | None, _message: Message) -> None:  # on the poller thread, in poll()
            self._reports.append((loop, future, error))

        while True:
            try:
                self._producer.produce(topic, value=value, key=key, headers=list(headers), on_delivery=report)
                return future
            except BufferError:  # librdkafka's queue is full: take delivery reports here
                self._producer.poll(0.05)
                self._hand_over()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)
            self._hand_over()

    def _hand_over(self) -> None:
        """The reports one ``poll`` served, settled on their loops by one call each (a wake-up of the loop
        per record was ~5 % of the cases worker, issue 15)."""
        if not self._reports:
            return
        reports, self._reports = self._reports, []
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[None], KafkaError | None]]] = {}
        for loop, future, error in reports:
            by_loop.setdefault(loop, []).append((future, error))
        for loop, settled in by_loop.items():
            loop.call_soon_threadsafe(_settle_all, settled)

    async def close(self, timeout_s: float = 10.0) -> int:
        """Deliver what is queued (up to ``timeout_s``) and stop; returns the records left undelivered."""
        self._stop.set()
        await asyncio.to_thread(self._poller.join, 1.0)
        left: int = await asyncio.to_thread(self._producer.flush, timeout_s)  # serves the last reports
        self._hand_over()
        return left


def _settle(future: asyncio.Future[Any], error: KafkaError | None) -> None:
    if future.done():
        return  # cancelled meanwhile
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(KafkaException(error))


def _settle_all(settled: list[tuple[asyncio.Future[Any], KafkaError | None]]) -> None:
    for future, error in settled:
        _settle(future, error)
