"""A corpus of bad input, mixed into good traffic, lands entirely in the dead-letter topic with the right
reasons (exact counts per reason), crashes nothing, and every good reading still reaches InfluxDB."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable

import paho.mqtt.client as mqtt
import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gridsentinel.core.records import DeadLetter, Frame
from gridsentinel.gateway.decode import REASONS
from gridsentinel.stack.services import Mosquitto

from .conftest import Namespace, wait_for
from .test_reliability import assert_exactly_once, device_client, drain_device, gateway_stats, start_worker

pytestmark = pytest.mark.integration

# Reasons a device cannot produce: the gateway subscribes only to gs/v1/+/{telemetry,frame,status}; and
# kafka_refused depends on the topic's config (test_a_frame_kafka_refuses_for_good_is_dead_lettered...);
# device_retired needs a retirement on the registry's feed (tests/integration/test_device_follow.py).
UNREACHABLE = {"bad_topic", "kafka_refused", "device_retired"}
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64 + b"\xff\xd9"


def frame_props(ts: object, seq: object = None) -> Properties:
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("ts", str(ts))] + ([("seq", str(seq))] if seq is not None else [])
    return props


def bad_telemetry(now: float) -> list[tuple[str, bytes]]:
    """(expected reason, payload) for telemetry a registered drain sensor could send."""
    def reading(**over: object) -> bytes:
        body: dict[str, object] = {"ts": now, "metrics": {"water_level_m": 1.0}}
        body.update(over)
        return json.dumps(body).encode()

    return [
        ("malformed_json", b'{"ts": 1, "metrics": {'), ("malformed_json", b"\xff\xfe\x00garbage"),
        ("malformed_json", b""),
        ("wrong_type", reading(ts=True)), ("wrong_type", reading(metrics={"water_level_m": "high"})),
        ("wrong_type", reading(seq="seven")), ("wrong_type", b"42"), ("wrong_type", reading(metrics=[1.0])),
        ("not_finite", b'{"ts": %d, "metrics": {"water_level_m": NaN}}' % now),
        ("not_finite", b'{"ts": %d, "metrics": {"water_level_m": Infinity}}' % now),
        ("not_finite", b'[{"n": "water_level", "v": -Infinity}]'),
        ("missing_field", json.dumps({"metrics": {"water_level_m": 1.0}}).encode()),
        ("missing_field", json.dumps({"ts": now}).encode()), ("missing_field", reading(metrics={})),
        ("bad_senml", b"[]"), ("bad_senml", b'[{"n": "water_level"}]'), ("bad_senml", b"[1, 2]"),
        ("bad_senml", b'[{"n": "water_level", "v": 1, "vs": "x"}]'),
        ("bad_senml", b'[{"n": "water_level", "v": 1, "foo_": 1}]'),
        ("unknown_metric", reading(metrics={"flux_capacitance": 1.21})),
        ("bad_unit", b'[{"n": "water_level", "u": "kg", "v": 1}]'),
        ("out_of_range", reading(metrics={"water_level_m": 999.0})),
        ("out_of_range", b'{"ts": %d, "metrics": {"water_level_m": 1%s}}' % (now, b"0" * 400)),
        ("out_of_range", reading(seq=2**63)),
        ("oversize", b'{"pad": "' + b"x" * (70 * 1024) + b'"}'),
        ("timestamp_future", reading(ts=now + 3600)), ("timestamp_too_old", reading(ts=now - 30 * 86400)),
        ("timestamp_future", reading(ts="2999-01-01T00:00:00Z")),
        ("bad_timestamp", reading(ts="yesterday")), ("bad_timestamp", reading(ts="2026-01-01T00:00:00")),
    ]


def test_bad_input_corpus_goes_to_the_dead_letter_with_its_reasons(ns: Namespace) -> None:
    tag = ns.prefix.strip(".")
    drain, cam, stranger = f"drain-{tag}", f"cam-{tag}", f"stranger-{tag}"
    camera = {"id": cam, "kind": "camera", "location": {"lat": 31.871, "lon": 120.556}, "expected_interval_s": 10}
    ns.add_devices([drain_device(drain), camera])
    Mosquitto(ns.settings).ensure_devices([stranger])  # may connect, but is not in the gateway's registry
    gw_stats = ns.workdir / "gateway-stats.json"
    ns.start_gateway("gateway", "--stats-file", str(gw_stats))
    start_worker(ns)

    now = time.time()
    base_ts = round(now - 120, 3)
    clients = {d: device_client(ns, d) for d in (drain, cam, stranger)}
    expected: Counter[str] = Counter()
    sent_bad: dict[str, bytes] = {}
    infos: list[mqtt.MQTTMessageInfo] = []
    good: set[int] = set()

    def send(device: str, kind: str, payload: bytes, reason: str | None = None,
             props: Properties | None = None) -> None:
        infos.append(clients[device].publish(f"gs/v1/{device}/{kind}", payload, qos=1, properties=props))
        if reason:
            expected[reason] += 1
            sent_bad.setdefault(reason, payload)

    def good_reading(seq: int) -> bytes:
        return json.dumps({"ts": round(base_ts + seq / 1000, 3), "seq": seq,
                           "metrics": {"water_level_m": 1.0 + seq / 100_000}}).encode()

    corpus = bad_telemetry(now)
    others: list[Callable[[int], None]] = [
        lambda i: send(cam, "frame", b"\x89PNG\r\n\x1a\n" + bytes(40), "not_jpeg", frame_props(now, i)),
        lambda i: send(cam, "frame", JPEG[:40], "not_jpeg", frame_props(now, i)),  # truncated
        lambda i: send(cam, "frame", JPEG, "missing_field", Properties(PacketTypes.PUBLISH)),
        lambda i: send(cam, "frame", JPEG, "timestamp_too_old", frame_props(now - 60 * 86400, i)),
        lambda i: send(cam, "frame", JPEG, "bad_timestamp", frame_props("noon", i)),
        lambda i: send(cam, "frame", JPEG, "wrong_type", frame_props(now, "one")),
        lambda i: send(cam, "frame", JPEG + b"\x00" * (2 * 1024 * 1024), "oversize", frame_props(now, i)),
        lambda i: send(drain, "frame", JPEG, "wrong_device_kind", frame_props(now, i)),
        lambda i: send(stranger, "telemetry", good_reading(i), "unknown_device"),
        lambda i: send(drain, "status", b"maybe", "bad_status"),
        # A device re-sending a reading it sent before (a new publish, same seq): rejected downstream of
        # the first copy, which is stored.
        lambda i: send(drain, "telemetry", good_reading(i - 10), "duplicate_seq") if i >= 10 else None,
    ]
    seq = 0
    for round_ in range(12):
        for reason, payload in corpus:
            for _ in range(2):
                send(drain, "telemetry", good_reading(seq))
                good.add(seq)
                seq += 1
            send(drain, "telemetry", payload, reason)
        for other in others:
            send(drain, "telemetry", good_reading(seq))
            good.add(seq)
            seq += 1
            other(seq)
        send(cam, "frame", JPEG, None, frame_props(now, round_))  # a good frame goes to gs.frames
        send(drain, "status", b"online")
        time.sleep(0.05)
    for info in infos:
        info.wait_for_publish(30)
    assert all(info.rc == mqtt.MQTT_ERR_SUCCESS for info in infos)
    total_bad = sum(expected.values())
    assert total_bad >= 400
    assert set(expected) == set(REASONS) - UNREACHABLE, "the corpus covers every reason a device can cause"

    # Every bad message is in the dead letter, with its reason (exact counts) and its raw payload.
    letters: list[DeadLetter] = []
    consumer = Consumer({"bootstrap.servers": ns.settings.kafka_bootstrap, "group.id": f"{ns.app_id}-dl",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([f"{ns.prefix}gs.deadletter"])
    try:
        deadline = time.monotonic() + 90
        while sum(x.origin.split("/")[2] in (drain, cam, stranger) for x in letters) < total_bad \
                and time.monotonic() < deadline:
            for m in consumer.consume(500, timeout=1.0):
                if m.error() is None:
                    value = m.value()
                    assert value is not None  # a dead letter always has a body
                    letters.append(DeadLetter.from_json(value))
            ns.check_alive()
        for m in consumer.consume(500, timeout=2.0):  # nothing beyond the corpus
            if m.error() is None:
                value = m.value()
                assert value is not None  # a dead letter always has a body
                letters.append(DeadLetter.from_json(value))
    finally:
        consumer.close()
    # The broker is shared: another test's or the demo's devices may publish meanwhile, and this gateway
    # dead-letters them as unknown. Judge only the letters about this test's own devices.
    ours = {drain, cam, stranger}
    letters = [x for x in letters if x.origin.split("/")[2] in ours]
    assert Counter(letter.reason for letter in letters) == expected
    by_reason = {letter.reason: letter for letter in letters}
    for reason, payload in sent_bad.items():
        if reason != "oversize":  # (the first oversize is the telemetry one; both are kept whole)
            letter = next(x for x in letters if x.reason == reason and (
                base64.b64decode(x.payload_b64) == payload  # a frame keeps its size and hash, never pixels
                or (x.payload_b64 == "" and x.payload_sha256 == hashlib.sha256(payload).hexdigest())))
            assert letter.origin.startswith("gs/v1/") and letter.detail
    assert by_reason["unknown_device"].device_id == stranger
    frames = [x for x in letters if x.origin.endswith("/frame")]
    assert frames and all(x.payload_b64 == "" and x.payload_bytes and x.payload_sha256 for x in frames)

    # The gateway counts them per reason, in its stats file (and its log line).
    def counters_match() -> bool:
        counted = dict(gateway_stats(gw_stats).get("rejected_by_reason") or {})
        others = counted.pop("unknown_device", 0)  # may include other devices on the shared broker
        mine = dict(expected)
        return counted == {k: v for k, v in mine.items() if k != "unknown_device"} and \
            others >= mine["unknown_device"]

    wait_for(counters_match, 30, "the gateway's per-reason counters", ns=ns,
             on_timeout=lambda: str(gateway_stats(gw_stats)))
    # Every good reading reached InfluxDB, once; nothing crashed.
    assert_exactly_once(ns, drain, good)
    ns.check_alive()


def test_a_frame_kafka_refuses_for_good_is_dead_lettered_and_the_stream_goes_on(ns: Namespace) -> None:
    """A frame bigger than the frames topic allows (its max.message.bytes) is refused by Kafka whatever
    the gateway does. It used to be left unacked and resent at every gateway recovery, every 5 s, forever
    (growing ``recoveries``); now it is dead-lettered with Kafka's reason (size and sha256, no pixels) and
    acked, and the frames after it flow. A good frame sent right behind it (possibly in the same refused
    batch) gets through too."""
    tag = ns.prefix.strip(".")
    cam = f"cam-{tag}"
    ns.add_devices([{"id": cam, "kind": "camera", "location": {"lat": 31.871, "lon": 120.556},
                     "expected_interval_s": 10}])
    frames_topic, limit = f"{ns.prefix}gs.frames", 20_000
    admin = AdminClient({"bootstrap.servers": ns.settings.kafka_bootstrap})
    for fut in admin.create_topics([NewTopic(frames_topic, num_partitions=4, replication_factor=1,
                                             config={"max.message.bytes": str(limit)})]).values():
        fut.result()  # before the gateway starts: it leaves an existing topic as it is
    gw_stats = ns.workdir / "gateway-stats.json"
    gateway = ns.start_gateway("gateway", "--stats-file", str(gw_stats))
    client = device_client(ns, cam)
    now = time.time()
    big = [b"\xff\xd8\xff\xe0" + os.urandom(3 * limit) + b"\xff\xd9" for _ in range(2)]  # incompressible
    small = [JPEG, JPEG + b"\x00"]

    def publish(payload: bytes, seq: int) -> None:
        client.publish(f"gs/v1/{cam}/frame", payload, qos=1, properties=frame_props(now, seq)).wait_for_publish(30)

    consumer = ns.consumer([f"{ns.prefix}gs.deadletter", frames_topic])
    letters: list[DeadLetter] = []
    frames: dict[int, bytes] = {}

    def read() -> None:
        for m in consumer.consume(100, timeout=0.5):
            value = m.value()
            if m.error() is not None or value is None:
                continue
            if m.topic() == frames_topic:
                raw = m.headers()
                assert isinstance(raw, list)  # confluent-kafka returns headers as a list of pairs
                headers = [(k, v) for k, v in raw if isinstance(v, bytes)]
                frame = Frame.from_kafka(m.key() or b"", value, headers)
                assert frame.seq is not None
                frames[frame.seq] = value
            else:
                letter = DeadLetter.from_json(value)
                if letter.device_id == cam:
                    letters.append(letter)

    def polled(condition: Callable[[], bool]) -> Callable[[], bool]:
        def check() -> bool:
            read()
            return condition()
        return check

    def stats() -> str:
        return f"gateway stats: {gateway_stats(gw_stats)}\n{ns.log('gateway')}"

    try:
        publish(big[0], 1)
        wait_for(polled(lambda: bool(letters)), 30, "the refused frame's dead letter", ns=ns, on_timeout=stats)
        publish(small[0], 2)
        publish(big[1], 3)  # then a big one and a good one back to back: they may share a batch
        publish(small[1], 4)
        wait_for(polled(lambda: len(letters) >= 2 and {2, 4} <= set(frames)), 30,
                 "the second dead letter and both good frames", ns=ns, on_timeout=stats)
        recoveries = gateway_stats(gw_stats)["recoveries"]
        time.sleep(11)  # more than two of the gateway's recovery intervals (5 s)
        read()
        final = gateway_stats(gw_stats)
        # The refused frames' messages were acked: a gateway resuming the session does not get them again.
        gateway.terminate()
        gateway.wait(30)
        ns.procs.remove(gateway)
        ns.start_gateway("gateway2", "--client-id", f"gw-{tag}-gateway")
        publish(small[0] + b"\x00\x00", 5)
        wait_for(polled(lambda: 5 in frames), 30, "a frame through the restarted gateway", ns=ns,
                 on_timeout=lambda: ns.log("gateway2"))
        read()
    finally:
        client.disconnect()
        consumer.close()

    assert [x.payload_bytes for x in letters] == [len(b) for b in big], "each refused frame dead-lettered once"
    for letter, payload in zip(letters, big, strict=True):
        assert letter.reason == "kafka_refused" and "MSG_SIZE_TOO_LARGE" in letter.detail, letter.detail
        assert letter.payload_b64 == "" and letter.payload_sha256 == hashlib.sha256(payload).hexdigest()
        assert letter.origin == f"gs/v1/{cam}/frame"
    assert frames == {2: small[0], 4: small[1], 5: small[0] + b"\x00\x00"}  # the good frames; the big ones never
    assert final["recoveries"] == recoveries, f"the gateway keeps recovering: {final}"
    assert final["rejected_by_reason"].get("kafka_refused") == 2, final
    ns.check_alive()
