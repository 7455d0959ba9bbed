"""Bulk import files (CSV or YAML) and the YAML export: parsing with every error listed by row and field.

YAML is the devices.yaml format (``devices: [{id, kind, location: {lat, lon}, ...}]``). CSV has a header
row with the columns ``id, kind, lat, lon`` and optionally ``grid_code, component_id,
expected_interval_s, install`` (a JSON object, e.g. ``{"depth_m": 3.0}``); empty cells are absent values.

>>> rows, errors = parse_import("id,kind,lat,lon\\ndrain-1,drain_level,31.87,120.55\\n,rain_gauge,91,0\\n", "x.csv")
>>> [(where, d.id) for where, d in rows]
[('line 2', 'drain-1')]
>>> for e in errors: print(e)
line 3: id: Field required
line 3: location.lat: Input should be less than or equal to 90 (got 91.0)
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from gridsentinel.core.devices import Device

CSV_COLUMNS = ("id", "kind", "lat", "lon", "grid_code", "component_id", "expected_interval_s", "install")
REQUIRED_CSV = ("id", "kind", "lat", "lon")


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem of an import file: where (``line 7`` of a CSV, ``devices[5]`` of a YAML), which field."""

    row: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.row}: {self.field}: {self.message}" if self.field else f"{self.row}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {"row": self.row, "field": self.field, "message": self.message}


def _errors(exc: ValidationError, row: str) -> list[RowError]:
    out = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e["loc"])
        got = e.get("input")
        shown = f" (got {got!r})" if e["type"] != "missing" and not isinstance(got, dict) else ""
        out.append(RowError(row, where, f"{e['msg']}{shown}"))
    return out


def _number(value: str) -> float | str:
    try:
        return float(value)
    except ValueError:
        return value  # pydantic names the field and the bad value


def _csv_records(text: str) -> tuple[list[tuple[str, dict[str, Any]]], list[RowError]]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED_CSV if c not in header]
    unknown = [c for c in header if c not in CSV_COLUMNS]
    problems = [RowError("line 1", c, "required column missing") for c in missing]
    problems += [RowError("line 1", c, f"unknown column (known: {', '.join(CSV_COLUMNS)})") for c in unknown]
    if problems:
        return [], problems
    records: list[tuple[str, dict[str, Any]]] = []
    for raw in reader:
        where = f"line {reader.line_num}"
        cells = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(cells.values()):
            continue  # a blank line
        if None in raw:
            problems.append(RowError(where, "", f"more cells than the {len(header)} columns of the header"))
            continue
        record: dict[str, Any] = {k: v for k, v in cells.items() if v != "" and k not in ("lat", "lon")}
        record["location"] = {k: _number(cells[k]) for k in ("lat", "lon") if cells.get(k)}
        if "expected_interval_s" in record:
            record["expected_interval_s"] = _number(record["expected_interval_s"])
        if "install" in record:
            try:
                record["install"] = json.loads(record["install"])
            except ValueError as exc:
                problems.append(RowError(where, "install", f"not a JSON object ({exc})"))
                continue
        records.append((where, record))
    return records, problems


def _yaml_records(text: str) -> tuple[list[tuple[str, dict[str, Any]]], list[RowError]]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "file"
        return [], [RowError(where, "", f"not valid YAML ({getattr(exc, 'problem', None) or exc})")]
    items = data.get("devices") if isinstance(data, dict) else data
    if not isinstance(items, list):
        return [], [RowError("file", "devices", "expected a list of devices (the devices.yaml format)")]
    records, problems = [], []
    for i, item in enumerate(items):
        if isinstance(item, dict):
            records.append((f"devices[{i}]", item))
        else:
            problems.append(RowError(f"devices[{i}]", "", f"expected a mapping, got {type(item).__name__}"))
    return records, problems


def parse_import(text: str, name: str) -> tuple[list[tuple[str, Device]], list[RowError]]:
    """The devices of an import file (each with its row) and every problem found, by row and field (ids
    given twice too).
    ``name`` picks the format: ``.csv`` is CSV, anything else YAML."""
    records, problems = (_csv_records if name.lower().endswith(".csv") else _yaml_records)(text)
    devices: list[tuple[str, Device]] = []
    first_row: dict[str, str] = {}
    for where, record in records:
        try:
            device = Device.model_validate(record)
        except ValidationError as exc:
            problems += _errors(exc, where)
            continue
        if device.id in first_row:
            problems.append(RowError(where, "id", f"{device.id!r} appears twice (first at {first_row[device.id]})"))
            continue
        first_row[device.id] = where
        devices.append((where, device))
    return devices, problems


def export_yaml(devices: Iterable[Device]) -> str:
    """The devices.yaml text of ``devices`` (loads back with ``Registry.load`` / ``parse_import``)."""
    out = []
    for d in devices:
        doc: dict[str, Any] = {"id": d.id, "kind": d.kind,
                               "location": {"lat": d.location.lat, "lon": d.location.lon}}
        if d.grid_code is not None:
            doc["grid_code"] = d.grid_code
        if d.component_id is not None:
            doc["component_id"] = d.component_id
        doc["expected_interval_s"] = d.expected_interval_s
        if d.install:
            doc["install"] = dict(d.install)
        out.append(doc)
    header = ("# The device registry, exported by `gridsentinel devices export` (active devices; the\n"
              "# devices.yaml format: a seed for `gridsentinel devices seed` or an import file).\n")
    return header + yaml.safe_dump({"devices": out}, sort_keys=False, allow_unicode=True)
