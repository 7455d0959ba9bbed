"""`bench ingest`'s end-to-end goal (issue 15): end to end against the slower of its two limits."""

from __future__ import annotations

import pytest

from gridsentinel.bench.ingest import end_to_end_vs_limit

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("gateway", "raw", "limit", "ratio"), [
    (60_000, 150_000, 60_000, 0.4),  # the gateway is the slower limit
    (160_000, 48_000, 48_000, 0.5),  # the raw ingest loop is
])
def test_the_end_to_end_is_measured_against_the_slower_limit(gateway: int, raw: int, limit: int,
                                                             ratio: float) -> None:
    got = end_to_end_vs_limit({"end_to_end_drain_per_s": 24_000, "gateway_per_s": gateway,
                               "ingest_raw": {"per_s": raw}})
    assert got["end_to_end_limit_per_s"] == limit
    assert got["end_to_end_vs_limit"] == ratio
    assert got["end_to_end_vs_limit_goal"] == ">= 0.5"
