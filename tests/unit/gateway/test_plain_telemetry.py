"""The gateway's fast path accepts exactly what the full decoder accepts, with the same values.

``decode_plain_telemetry`` either returns the readings ``decode_telemetry`` would return or declines
(None) and leaves the payload to it; it must never accept what the full decoder rejects.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridsentinel.gateway.decode import Limits, Rejection, decode_plain_telemetry, decode_telemetry

pytestmark = pytest.mark.unit

NOW = 1_780_000_000.0
LIMITS = Limits()


def check_same(payload: bytes) -> bool:
    """Both decoders agree on ``payload``; True when the fast path took it."""
    full = decode_telemetry("dev-1", payload, NOW, LIMITS)
    fast = decode_plain_telemetry(payload, NOW, LIMITS)
    if fast is None:
        return False
    assert not isinstance(full, Rejection), (payload, full)
    ts, seq, values = fast
    assert [(r.metric, r.unit, r.value, r.observed_at, r.seq) for r in full] == [
        (m.name, m.unit, v, ts, seq) for m, v in values]
    assert all(type(v) is float for _, v in values) and type(ts) is float
    return True


CORPUS = [
    b'{"ts":1780000000,"seq":1,"metrics":{"water_level_m":0.5}}',
    b'{"ts":1779999999.125,"metrics":{"water_level_m":1,"battery_v":3.6}}',
    b'{"seq":0,"metrics":{"tilt_deg":-3.5},"ts":1780000000,"extra":{"x":[1,2]}}',
    b'{"ts":1780000000,"seq":null,"metrics":{"water_level":2}}',
    b'{"ts":1780000000,"metrics":{"water_level_m":0.5,"water_level":0.7}}',
    b'{"ts":1780000000,"metrics":{"water_level_m":0.5,"water_level_m":0.7}}',
    b' {"ts": 1780000000 , "metrics" : {"humidity_pct": 100}} ',
    b'{"ts":1780000300,"metrics":{"water_level_m":0.5}}',  # exactly at the future limit
    b'{"ts":1779395200,"metrics":{"water_level_m":0.5}}',  # exactly at the age limit
    b'{"ts":1780000300.001,"metrics":{"water_level_m":0.5}}',
    b'{"ts":1779395199.999,"metrics":{"water_level_m":0.5}}',
    b'{"ts":1780000000,"seq":9223372036854775807,"metrics":{"water_level_m":0.5}}',
    b'{"ts":1780000000,"seq":9223372036854775808,"metrics":{"water_level_m":0.5}}',
    b'{"ts":1780000000,"seq":18446744073709551616,"metrics":{"water_level_m":0.5}}',
    b'{"ts":1780000000,"seq":-1,"metrics":{"water_level_m":0.5}}',
    b'{"ts":1780000000,"seq":1.0,"metrics":{"water_level_m":0.5}}',
    b'{"ts":1780000000,"seq":true,"metrics":{"water_level_m":0.5}}',
    b'{"ts":true,"metrics":{"water_level_m":0.5}}',
    b'{"ts":"2026-05-28T20:26:40Z","metrics":{"water_level_m":0.5}}',
    b'{"ts":1780000000,"metrics":{"water_level_m":true}}',
    b'{"ts":1780000000,"metrics":{"water_level_m":"0.5"}}',
    b'{"ts":1780000000,"metrics":{"water_level_m":NaN}}',
    b'{"ts":1780000000,"metrics":{"water_level_m":-Infinity}}',
    b'{"ts":1780000000,"metrics":{"water_level_m":1e999}}',
    b'{"ts":1780000000,"metrics":{"water_level_m":1' + b"0" * 400 + b"}}",
    b'{"ts":1780000000,"metrics":{"water_level_m":50.0000001}}',
    b'{"ts":1780000000,"metrics":{"water_level_m":-1}}',
    b'{"ts":1780000000,"metrics":{"voltage":1}}',
    b'{"ts":1780000000,"metrics":{}}',
    b'{"ts":1780000000,"metrics":[]}',
    b'{"ts":1780000000}',
    b'{"metrics":{"water_level_m":0.5}}',
    b'[{"n":"water_level","v":0.5}]',
    b'"hello"',
    b"{not json",
    b"\xff\xfe{}",
    '{"ts":1780000000,"metrics":{"water_level_m":0.5},"note":"caf\u00e9"}'.encode(),
    '{"ts":1780000000,"metrics":{"water_level_m":0.5}}'.encode("utf-16"),
    b'{"ts":1780000000,"metrics":{"water_level_m":0.5}}' + b" " * (64 * 1024),
]


@pytest.mark.parametrize("payload", CORPUS)
def test_corpus(payload: bytes) -> None:
    check_same(payload)


def test_the_common_case_takes_the_fast_path() -> None:
    assert all(check_same(p) for p in CORPUS[:9])


def test_oversize_is_left_to_the_full_decoder() -> None:
    payload = CORPUS[-1]
    assert decode_plain_telemetry(payload, NOW, LIMITS) is None
    assert decode_telemetry("dev-1", payload, NOW, LIMITS).reason == "oversize"  # type: ignore[union-attr]


_numbers = st.one_of(st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=True),
                     st.sampled_from([0, -0.0, 50, 50.0, -1, 100, 1e-300, 1779999999.5]))
_values = st.one_of(_numbers, st.booleans(), st.none(), st.text(max_size=4), st.lists(st.integers(), max_size=2))
_keys = st.sampled_from(["water_level_m", "water_level", "battery_v", "tilt_deg", "humidity_pct", "laeq_db",
                         "voltage", "", "ts"])


@st.composite
def telemetry(draw: st.DrawFn) -> bytes:
    """A valid payload with, most of the time, one or more fields broken or missing."""
    broken = draw(st.sets(st.sampled_from(["ts", "seq", "metrics", "value", "no ts", "no metrics"]), max_size=2))
    obj: dict[str, object] = {
        "ts": draw(st.one_of(st.floats(min_value=NOW - 7 * 86400, max_value=NOW + 300),
                             st.integers(int(NOW) - 7 * 86400, int(NOW) + 300))),
        "seq": draw(st.one_of(st.none(), st.integers(min_value=0, max_value=2**63 - 1))),
        "metrics": draw(st.dictionaries(st.sampled_from(["water_level_m", "battery_v", "tilt_deg"]),
                                        st.floats(min_value=-1, max_value=50), min_size=1, max_size=3)),
    }
    if "ts" in broken:
        obj["ts"] = draw(st.one_of(_numbers, _values))
    if "seq" in broken:
        obj["seq"] = draw(st.one_of(st.integers(min_value=-5, max_value=2**65), _values))
    if "metrics" in broken:
        obj["metrics"] = draw(st.one_of(st.dictionaries(_keys, _values, max_size=3), _values))
    if "value" in broken and isinstance(obj["metrics"], dict):
        obj["metrics"] = {**obj["metrics"], draw(_keys): draw(_values)}
    for field in ("ts", "metrics"):
        if f"no {field}" in broken:
            del obj[field]
    return json.dumps(obj).encode()  # allow_nan: NaN and Infinity literals as devices might send them


@settings(max_examples=400, deadline=None)
@given(telemetry())
def test_agrees_with_the_full_decoder(payload: bytes) -> None:
    check_same(payload)
