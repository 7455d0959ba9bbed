"""``/api/v1/signals/{device_id}``: a device's readings around a time, from InfluxDB (case evidence).

Points are stored by the ingest stage as measurement ``reading`` with tags ``device`` and ``metric``
and the field ``value``; event time is the point's time.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool

from gridsentinel.api.deps import StateDep, Viewer
from gridsentinel.api.errors import ApiError, responses
from gridsentinel.api.scope import in_device_scope
from gridsentinel.settings import Settings

router = APIRouter(prefix="/api/v1/signals", tags=["devices"])
MAX_POINTS = 2000


def query_signal(settings: Settings, device_id: str, metric: str | None, start: float, stop: float,
                 bucket: str | None = None) -> dict[str, list[list[float]]]:
    """metric -> [[unix s, value], ...] in time order (at most MAX_POINTS per metric)."""
    from influxdb_client import InfluxDBClient

    flux = (
        f'from(bucket: "{bucket or settings.influx_bucket}")'
        f" |> range(start: time(v: {int(start * 1e9)}), stop: time(v: {int(stop * 1e9) + 1}))"
        ' |> filter(fn: (r) => r._measurement == "reading" and r._field == "value")'
        f' |> filter(fn: (r) => r.device == "{device_id}")'
        + (f' |> filter(fn: (r) => r.metric == "{metric}")' if metric else "")
        + f' |> group(columns: ["metric"]) |> sort(columns: ["_time"]) |> tail(n: {MAX_POINTS})'
    )
    out: dict[str, list[list[float]]] = {}
    with InfluxDBClient(url=settings.influx_url, token=settings.influx_token, org=settings.influx_org,
                        timeout=10_000) as client:
        for table in client.query_api().query(flux):
            for rec in table.records:
                out.setdefault(str(rec.values.get("metric")), []).append(
                    [rec.get_time().timestamp(), float(rec.get_value())])
    return out


@router.get(
    "/{device_id}",
    summary="A device's readings around a time (InfluxDB)",
    description="Every metric of the device (or `metric`) between `start` and `end` (Unix s), in time "
    "order; the dashboard charts it around a case's detection.",
    responses=responses(401, 403, 404, 422, 503),
)
async def signal(
    state: StateDep,
    token: Viewer,
    device_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="Device id.")],
    start: Annotated[float, Query(ge=0, le=4_102_444_800, description="From (Unix s, event time).")],
    end: Annotated[float, Query(ge=0, le=4_102_444_800, description="To (Unix s, event time).")],
    metric: Annotated[str | None, Query(pattern=r"^[a-z0-9_]{1,32}$", description="One metric only.")] = None,
) -> dict[str, Any]:
    device = state.registry.get(device_id)
    if device is None or not in_device_scope(token, device.grid_code):  # another center's device: not found
        raise ApiError(404, f"no device {device_id}")
    if end <= start or end - start > 7 * 86400:
        raise ApiError(400, "need start < end, at most 7 days apart")
    try:
        series = await run_in_threadpool(query_signal, state.settings, device_id, metric, start, end)
    except Exception as exc:
        raise ApiError(503, f"InfluxDB query failed: {type(exc).__name__}", code="unavailable") from None
    return {"device_id": device_id, "start": start, "end": end, "series": series}
