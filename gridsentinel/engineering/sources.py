"""History as readings, in event-time order: InfluxDB (what the ingest stage wrote) or CSV files.

CSV comes in two layouts, told apart by the header:

- readings: ``device_id,metric,unit,value,observed_at[,kind,grid_code,seq]`` (``observed_at`` in Unix
  seconds or ISO 8601);
- NAB: ``timestamp,value`` — one series per file, the device id being the file's path below the data
  folder, metric ``value``; naive timestamps are UTC (as NAB's are).

The NAB benchmark reads its files through :func:`read_series` and :func:`series_readings` too, so the
benchmark and the backtest share one path from file to ``Reading``.

>>> import io
>>> rows = list(csv_readings(io.StringIO("timestamp,value\\n2014-04-01 00:00:00,1.5\\n"), "f.csv"))
>>> rows[0].device_id, rows[0].value, rows[0].observed_at
('f.csv', 1.5, 1396310400.0)
"""

from __future__ import annotations

import csv
import heapq
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from gridsentinel.core.records import Reading, RecordError
from gridsentinel.errors import GridSentinelError
from gridsentinel.settings import Settings


class SourceError(GridSentinelError):
    """History could not be read (a missing file, a bad row, InfluxDB unreachable)."""


def parse_time(text: str) -> float:
    """Unix seconds from epoch seconds or ISO 8601 (naive = UTC).

    >>> parse_time("1749434400"), parse_time("2025-06-09T02:00:00Z")
    (1749434400.0, 1749434400.0)
    """
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()


# -- NAB-style series (shared with gridsentinel.bench.nab) ------------------------------------------
def read_series(path: Path) -> tuple[list[str], list[datetime], list[float]]:
    """A ``timestamp,value`` file: raw timestamps, parsed (naive) datetimes and values."""
    raw_ts: list[str] = []
    values: list[float] = []
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        for row in reader:
            raw_ts.append(row[0])
            values.append(float(row[1]))
    return raw_ts, [datetime.fromisoformat(t) for t in raw_ts], values


def series_readings(device: str, stamps: Iterable[datetime], values: Iterable[float], *,
                    kind: str = "", grid_code: str = "") -> Iterator[Reading]:
    """One reading per row (naive stamps are UTC), metric ``value``."""
    for ts, value in zip(stamps, values, strict=True):
        yield Reading(device, "value", "", value, ts.replace(tzinfo=UTC).timestamp() if ts.tzinfo is None
                      else ts.timestamp(), kind=kind, grid_code=grid_code)


# -- CSV -------------------------------------------------------------------------------------------
def csv_readings(fh: IO[str], name: str, *, kind: str = "", grid_code: str = "") -> Iterator[Reading]:
    """Readings from one CSV file (either layout, see the module doc)."""
    reader = csv.DictReader(fh)
    header = set(reader.fieldnames or ())
    nab = {"timestamp", "value"} <= header and "device_id" not in header
    if not nab and not {"device_id", "metric", "value", "observed_at"} <= header:
        raise SourceError(f"{name}: header {sorted(header)}; expected timestamp,value (NAB) or "
                          "device_id,metric,unit,value,observed_at[,kind,grid_code,seq]")
    for line, row in enumerate(reader, start=2):
        try:
            if nab:
                yield Reading(name, "value", "", float(row["value"]), parse_time(row["timestamp"]),
                              kind=kind, grid_code=grid_code)
            else:
                seq = row.get("seq")
                yield Reading(row["device_id"], row["metric"], row.get("unit") or "", float(row["value"]),
                              parse_time(row["observed_at"]), seq=int(seq) if seq else None,
                              kind=row.get("kind") or kind, grid_code=row.get("grid_code") or grid_code)
        except (ValueError, RecordError) as exc:
            raise SourceError(f"{name}: line {line}: {exc}") from None


def csv_files(path: Path) -> list[tuple[Path, str]]:
    """(file, series name) for a file, or every ``*.csv`` below a folder (``data/`` of a NAB folder)."""
    if path.is_file():
        return [(path, path.name)]
    if not path.is_dir():
        raise SourceError(f"{path}: no such file or folder")
    root = path / "data" if (path / "data").is_dir() else path
    return [(p, str(p.relative_to(root))) for p in sorted(root.rglob("*.csv"))]


def _in_range(readings: Iterable[Reading], since: float | None, until: float | None) -> Iterator[Reading]:
    for r in readings:
        if (since is None or r.observed_at >= since) and (until is None or r.observed_at < until):
            yield r


class CsvSource:
    """Readings from CSV files, merged in event-time order (each file is already in order)."""

    def __init__(self, path: Path, *, since: float | None = None, until: float | None = None,
                 kind: str = "", grid_code: str = "") -> None:
        self.files = csv_files(path)
        if not self.files:
            raise SourceError(f"{path}: no CSV files")
        self.since, self.until, self.kind, self.grid_code = since, until, kind, grid_code

    def count(self) -> int:
        """Rows in range (for the progress bar); reads the files once."""
        return sum(1 for _ in self)

    def __iter__(self) -> Iterator[Reading]:
        handles = [path.open(newline="") for path, _ in self.files]
        try:
            streams = [_in_range(csv_readings(fh, name, kind=self.kind, grid_code=self.grid_code),
                                 self.since, self.until)
                       for fh, (_, name) in zip(handles, self.files, strict=True)]
            yield from heapq.merge(*streams, key=lambda r: r.observed_at)
        finally:
            for fh in handles:
                fh.close()


# -- InfluxDB --------------------------------------------------------------------------------------
def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def flux_query(bucket: str, since: float, until: float, devices: Iterable[str] = ()) -> str:
    """The readings of ``[since, until)``, one row per reading, in time order."""
    flt = 'r._measurement == "reading"'
    wanted = sorted(devices)
    if wanted:
        flt += " and (" + " or ".join(f'r.device == "{d}"' for d in wanted) + ")"
    return (f'from(bucket: "{bucket}") |> range(start: {_rfc3339(since)}, stop: {_rfc3339(until)}) '
            f"|> filter(fn: (r) => {flt}) "
            '|> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value") '
            '|> group() |> sort(columns: ["_time", "device", "metric"])')


def _record_reading(values: dict[str, Any]) -> Reading:
    seq = values.get("seq")
    return Reading(str(values["device"]), str(values["metric"]), str(values.get("unit") or ""),
                   float(values["value"]), values["_time"].timestamp(),
                   seq=int(seq) if seq is not None else None, kind=str(values.get("kind") or ""),
                   grid_code=str(values.get("grid") or ""))


class InfluxSource:
    """Readings from the ``reading`` measurement the ingest stage writes (docs: ingest/influx.py)."""

    def __init__(self, settings: Settings, since: float, until: float, *, bucket: str | None = None,
                 devices: Iterable[str] = ()) -> None:
        self.settings = settings
        self.since, self.until = since, until
        self.bucket = bucket or settings.influx_bucket
        self.devices = tuple(devices)

    def _client(self) -> Any:
        from influxdb_client import InfluxDBClient

        s = self.settings
        return InfluxDBClient(url=s.influx_url, token=s.influx_token, org=s.influx_org, timeout=120_000)

    def count(self) -> int:
        flux = (f'from(bucket: "{self.bucket}") |> range(start: {_rfc3339(self.since)}, '
                f'stop: {_rfc3339(self.until)}) |> filter(fn: (r) => r._measurement == "reading" and '
                'r._field == "value") |> group() |> count()')
        try:
            with self._client() as client:
                tables = client.query_api().query(flux)
        except Exception as exc:  # urllib3 / ApiException: say where and why, no traceback
            raise SourceError(f"InfluxDB {self.settings.influx_url} bucket {self.bucket}: {exc}") from None
        return sum(int(rec.get_value()) for t in tables for rec in t.records)

    def __iter__(self) -> Iterator[Reading]:
        flux = flux_query(self.bucket, self.since, self.until, self.devices)
        try:
            with self._client() as client:
                for record in client.query_api().query_stream(flux):
                    yield _record_reading(record.values)
        except SourceError:
            raise
        except Exception as exc:
            raise SourceError(f"InfluxDB {self.settings.influx_url} bucket {self.bucket}: {exc}") from None
