"""The fast receive path of the gateway's paho subclass gives on_message what paho itself would."""

from __future__ import annotations

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gridsentinel.errors import GridSentinelError
from gridsentinel.gateway.paho_compat import BufferedClient, FastMessage, check_paho

from ...conftest import mqtt_publish as publish

pytestmark = pytest.mark.unit


def client() -> tuple[BufferedClient, list[object]]:
    c = BufferedClient(mqtt.CallbackAPIVersion.VERSION2, client_id="t", protocol=mqtt.MQTTv5)
    c.manual_ack_set(True)
    got: list[object] = []
    c.on_message = lambda _c, _u, msg: got.append(msg)
    return c, got


def test_qos1_publishes_without_properties_take_the_fast_path() -> None:
    c, got = client()
    big = b"x" * 300  # a two-byte remaining length
    data = publish("gs/v1/d1/telemetry", b'{"a":1}', mid=7) + publish("gs/v1/d2/telemetry", big, mid=65535,
                                                                     dup=True)
    rc, used = c.feed(data)
    assert rc == mqtt.MQTT_ERR_SUCCESS and used == len(data)
    assert [type(m) for m in got] == [FastMessage, FastMessage]
    first, second = got
    assert isinstance(first, FastMessage) and isinstance(second, FastMessage)
    assert (first.topic, first.payload, first.mid, first.qos, first.dup, first.properties) == (
        "gs/v1/d1/telemetry", b'{"a":1}', 7, 1, False, None)
    assert (second.payload, second.mid, second.dup) == (big, 65535, True)
    assert not c._out_packet  # manual ack: nothing acknowledged by the client itself


def test_partial_packets_wait_for_the_rest() -> None:
    c, got = client()
    data = publish("gs/v1/d1/telemetry", b"y" * 200, mid=1) * 2
    for cut in (1, 2, 3, len(data) // 2, len(data) - 1):
        got.clear()
        rc, used = c.feed(data[:cut])
        assert rc == mqtt.MQTT_ERR_SUCCESS
        rest_rc, rest_used = c.feed(data[used:])
        assert rest_rc == mqtt.MQTT_ERR_SUCCESS and used + rest_used == len(data)
        assert [m.payload for m in got] == [b"y" * 200] * 2  # type: ignore[attr-defined]


def test_publishes_with_properties_go_through_paho() -> None:
    c, got = client()
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = "application/senml+json"
    props.UserProperty = [("ts", "1780000000"), ("seq", "3")]
    rc, _ = c.feed(publish("gs/v1/cam/frame", b"\xff\xd8\xff", mid=9, props=props))
    assert rc == mqtt.MQTT_ERR_SUCCESS
    (msg,) = got
    assert isinstance(msg, mqtt.MQTTMessage)
    assert msg.properties is not None
    # paho's Properties sets its attributes by name at run time: no declared ContentType or UserProperty
    assert msg.properties.ContentType == "application/senml+json"  # type: ignore[attr-defined]
    assert dict(msg.properties.UserProperty) == {"ts": "1780000000", "seq": "3"}  # type: ignore[attr-defined]
    assert (msg.topic, msg.payload, msg.mid) == ("gs/v1/cam/frame", b"\xff\xd8\xff", 9)


def test_qos0_and_automatic_ack() -> None:
    c, got = client()
    c.manual_ack_set(False)
    c.feed(publish("a/b", b"0", qos=0) + publish("a/b", b"1", mid=5))
    assert [(m.qos, m.mid) for m in got] == [(0, 0), (1, 5)]  # type: ignore[attr-defined]
    assert [p["packet"] for p in c._out_packet] == [b"\x40\x02\x00\x05"]


def test_ack_many_is_one_write_of_pubacks() -> None:
    c, _ = client()
    c.ack_many([1, 258, 65535])
    (packet,) = c._out_packet
    assert packet["packet"] == b"\x40\x02\x00\x01" + b"\x40\x02\x01\x02" + b"\x40\x02\xff\xff"
    c.ack_many([])
    assert len(c._out_packet) == 1


def test_other_packets_are_paho_s() -> None:
    c, _ = client()
    c._sock = None
    # A PINGRESP is handled by paho (it only records the time); a broken length is a protocol error.
    assert c.feed(b"\xd0\x00") == (mqtt.MQTT_ERR_SUCCESS, 2)
    assert c.feed(b"\x30\xff\xff\xff\xff\x01")[0] == mqtt.MQTT_ERR_PROTOCOL


def test_fast_publish_hook_gets_raw_topic_and_payload() -> None:
    c, got = client()
    raw: list[tuple[bytes, bytes, int, int, bool]] = []
    c.on_fast_publish = lambda *args: raw.append(args)
    data = publish("gs/v1/d1/telemetry", b'{"a":1}', mid=7) + publish("gs/v1/d2/frame", b"\xff\xd8", mid=8, dup=True)
    assert c.feed(data) == (mqtt.MQTT_ERR_SUCCESS, len(data))
    assert raw == [(b"gs/v1/d1/telemetry", b'{"a":1}', 7, 1, False), (b"gs/v1/d2/frame", b"\xff\xd8", 8, 1, True)]
    assert not got and not c._out_packet


def test_filtered_callbacks_still_route_through_paho() -> None:
    c, got = client()
    routed: list[object] = []
    c.message_callback_add("gs/v1/+/frame", lambda _c, _u, msg: routed.append(msg.topic))
    data = publish("gs/v1/d1/telemetry", b"{}", mid=1) + publish("gs/v1/d1/frame", b"{}", mid=2)
    assert c.feed(data) == (mqtt.MQTT_ERR_SUCCESS, len(data))
    assert routed == ["gs/v1/d1/frame"] and [m.topic for m in got] == ["gs/v1/d1/telemetry"]  # type: ignore[attr-defined]


def test_an_untested_paho_version_is_refused_with_what_to_do() -> None:
    check_paho()  # the pinned one
    with pytest.raises(GridSentinelError, match=r"paho-mqtt 2\.3\.0 is installed.*constraints\.txt"):
        check_paho("2.3.0")


def test_a_paho_without_the_private_parts_used_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(mqtt.Client, "_packet_handle")
    with pytest.raises(GridSentinelError, match="lacks _packet_handle"):
        check_paho()  # run by every BufferedClient before paho's own constructor
