"""Readings' Kafka values -> line protocol: the same points as ``to_line`` of the decoded ``Reading``, bad
records singled out with a reason, whatever else is in their batch."""

from __future__ import annotations

import json
import random

import pytest

from gridsentinel.core.records import Reading
from gridsentinel.ingest import lines
from gridsentinel.ingest.influx import to_line
from gridsentinel.ingest.lines import LineConverter, head, line


def reading(i: int, **over: object) -> Reading:
    base: dict[str, object] = {
        "device_id": f"drain-{i % 7}", "metric": "water_level", "unit": "m", "value": 0.25 + i / 1000,
        "observed_at": 1_780_000_000.0 + i * 0.001, "seq": i, "received_at": 1_780_000_000.5,
        "kind": "drain_level", "grid_code": "320582004001001"}
    base.update(over)
    return Reading(**base)  # type: ignore[arg-type]


def generated(n: int, rng: random.Random) -> list[Reading]:
    """Readings with the shapes the gateway writes: optional seq, kind and grid, odd names and values."""
    out = []
    for i in range(n):
        out.append(reading(
            i, device_id=rng.choice(["d1", "a b", "x,y=z", "back\\slash", "设备-7"]),
            metric=rng.choice(["water_level", "tilt", "pm2_5"]), unit=rng.choice(["m", "deg", "ug/m3"]),
            value=rng.choice([0.0, -1.5, 1e-12, 123456789.125, 3, rng.uniform(-1e6, 1e6)]),
            observed_at=rng.choice([1_780_000_000.123456, 1_700_000_000 + rng.random() * 1e8, 1_780_000_000]),
            seq=rng.choice([None, 0, rng.randrange(2**62)]), kind=rng.choice(["", "drain_level"]),
            grid_code=rng.choice(["", "320582004001001"])))
    return out


def test_lines_are_exactly_to_line_of_the_reading() -> None:
    readings = generated(500, random.Random(7))
    out = LineConverter().convert([r.to_json() for r in readings])
    assert out.bad == []
    assert out.lines == [to_line(r) for r in readings]
    assert out.index == list(range(500))
    assert out.observed_at == [r.observed_at for r in readings]
    assert out.received_at == [r.received_at for r in readings]


def test_a_point_looks_as_documented() -> None:
    [text] = LineConverter().convert([reading(3).to_json()]).lines
    assert text == ("reading,community=320582004001,device=drain-3,district=320582,grid=320582004001001,"
                    "kind=drain_level,metric=water_level,street=320582004,unit=m value=0.253,seq=3i "
                    "1780000000003000")


def test_an_integer_value_and_unknown_keys_are_taken() -> None:
    raw = json.dumps({"device_id": "d", "metric": "m", "unit": "u", "value": 2, "observed_at": 1_780_000_000,
                      "extra": {"nested": [1]}}).encode()
    out = LineConverter().convert([raw])
    assert out.lines == ["reading,device=d,metric=m,unit=u value=2.0 1780000000000000"] and out.bad == []


BAD = [
    (b"", "not JSON"),
    (b"{not json", "not JSON"),
    (None, "tombstone"),
    (b"[1, 2]", "Expected `object`"),
    (b'{"device_id": "d", "metric": "m", "unit": "u", "observed_at": 1}', "missing required field `value`"),
    (b'{"device_id": "d", "metric": "m", "unit": "u", "value": "high", "observed_at": 1}', "`$.value`"),
    (b'{"device_id": "d", "metric": "m", "unit": "u", "value": true, "observed_at": 1}', "got `bool`"),
    (b'{"device_id": "d", "metric": "m", "unit": "u", "value": 1e999, "observed_at": 1}', "out of range"),
    (b'{"device_id": "d", "metric": "m", "unit": "u", "value": NaN, "observed_at": 1}', "not JSON"),
    (b'{"device_id": 7, "metric": "m", "unit": "u", "value": 1, "observed_at": 1}', "`$.device_id`"),
    (b'{"device_id": "d", "metric": "m", "unit": "u", "value": 1, "observed_at": 1, "seq": 1.5}', "`$.seq`"),
    # two readings in one record: the batch decode must not let it shift the others
    (reading(1).to_json() + b"," + reading(2).to_json(), "not JSON"),
]


@pytest.mark.parametrize(("value", "why"), BAD)
def test_a_bad_record_is_singled_out_with_its_reason_and_the_batch_goes_on(value: bytes | None, why: str) -> None:
    good = [reading(i) for i in range(6)]
    values: list[bytes | None] = [r.to_json() for r in good]
    values.insert(3, value)
    out = LineConverter().convert(values)
    assert [i for i, _ in out.bad] == [3]
    assert why in out.bad[0][1], out.bad
    assert out.lines == [to_line(r) for r in good]
    assert out.index == [0, 1, 2, 4, 5, 6]  # each line points at its own record


def test_several_bad_records_keep_their_positions() -> None:
    values: list[bytes | None] = [b"x", reading(0).to_json(), None, reading(1).to_json(), b"{}"]
    out = LineConverter().convert(values)
    assert [i for i, _ in out.bad] == [0, 2, 4] and out.index == [1, 3]


def test_the_tag_cache_is_bounded_and_gives_the_same_lines_after_it_is_cleared(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lines, "MAX_HEADS", 10)
    conv = LineConverter()
    values = [reading(0, device_id=f"d{i}").to_json() for i in range(25)]
    first = conv.convert(values)
    assert len(conv._heads) <= 10
    assert conv.convert(values).lines == first.lines == [to_line(Reading.from_json(v)) for v in values]


def test_head_and_line_escape_tags() -> None:
    assert head("a b", "m,1", "u=2", "", "") == r"reading,device=a\ b,metric=m\,1,unit=u\=2"
    assert line("h", 1e-7, None, 1.0) == "h value=1e-07 1000000"
