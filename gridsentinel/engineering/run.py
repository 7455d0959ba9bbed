"""``gridsentinel backtest``: load configs and history, replay, write the JSON summary and HTML report."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from gridsentinel.cases.case import Case
from gridsentinel.cases.categories import load_catalog
from gridsentinel.cases.store_protocol import CaseQuery
from gridsentinel.core.config import read_text
from gridsentinel.core.devices import Device, Location, Registry
from gridsentinel.detectors.config import DetectorConfig
from gridsentinel.engineering import html as html_report
from gridsentinel.engineering.backtest import Backtest, Run, make_engine
from gridsentinel.engineering.configs import live_text, validate_text
from gridsentinel.engineering.report import difference, run_summary
from gridsentinel.engineering.sources import CsvSource, InfluxSource, SourceError, parse_time
from gridsentinel.engineering.versions import VersionStore
from gridsentinel.errors import ConfigError
from gridsentinel.settings import Settings

_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)([smhd])$")


def parse_when(text: str, now: float | None = None) -> float:
    """``now``, ``-6h`` / ``-30m`` / ``-7d``, Unix seconds or ISO 8601 (naive = UTC).

    >>> parse_when("-2h", now=10000.0), parse_when("now", now=5.0), parse_when("2025-06-09T02:00:00Z")
    (2800.0, 5.0, 1749434400.0)
    """
    now = time.time() if now is None else now
    if text == "now":
        return now
    m = _RELATIVE.match(text)
    if m:
        return now - float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    try:
        return parse_time(text)
    except ValueError:
        raise ConfigError(f"time {text!r}: expected now, -6h/-30m/-7d, Unix seconds or ISO 8601") from None


class ProgressBar:
    """A one-line bar on stderr (redrawn at most every 0.2 s); silent when stderr is not a terminal
    unless ``force``."""

    def __init__(self, total: int | None, stream: TextIO = sys.stderr, force: bool = False) -> None:
        self.total, self.stream = total, stream
        self.enabled = force or stream.isatty()
        self._last = 0.0
        self._t0 = time.monotonic()

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self._last < 0.2 and done != self.total):
            return
        self._last = now
        rate = done / max(now - self._t0, 1e-6)
        if self.total:
            frac = min(1.0, done / self.total)
            bar = "#" * int(frac * 30)
            self.stream.write(f"\rreplaying [{bar:<30}] {frac:4.0%} {done:,}/{self.total:,} readings "
                              f"({rate:,.0f}/s)")
        else:
            self.stream.write(f"\rreplaying {done:,} readings ({rate:,.0f}/s)")
        self.stream.flush()

    def close(self, done: int) -> None:
        if self.enabled:
            self._last = 0.0
            self(done)
            self.stream.write("\n")
            self.stream.flush()


@dataclass
class BacktestRequest:
    config_path: Path  # a folder with detectors.yaml, or the YAML file itself
    since: float
    until: float
    source: str = "influx"  # influx | csv
    csv_path: Path | None = None
    against_live: bool = False
    out_dir: Path | None = None
    bucket: str | None = None
    prefix_digits: int = 9
    tolerance_s: float = 3600.0
    check_every_s: float = 60.0
    csv_kind: str = ""  # kind (and grid) for CSV series of devices the registry does not know
    csv_grid: str = ""
    database_url: str | None = None  # real cases; None: GS_DATABASE_URL or sqlite:///<run_dir>/cases.db
    progress: bool = True


def _detectors_path(path: Path) -> Path:
    return path / "detectors.yaml" if path.is_dir() else path


def load_config_text(text: str, where: str) -> DetectorConfig:
    config, problems = validate_text(text, where)
    if config is None:
        raise ConfigError("\n".join(problems))
    return config


def _config_dir(req: BacktestRequest, settings: Settings) -> Path:
    # categories, routing, calendar, grid and devices: from the given folder when it has them
    folder = req.config_path if req.config_path.is_dir() else req.config_path.parent
    return folder if (folder / "categories.yaml").exists() else settings.config_dir


def _csv_devices(registry: Registry, source: CsvSource, kind: str, grid: str) -> None:
    """Register the CSV's unknown series as devices of ``kind`` in ``grid`` (NAB files have no registry)."""
    if not kind:
        return
    names = {r.device_id for r in source if registry.get(r.device_id) is None}
    lat, lon = 0.0, 0.0
    if grid and registry.grid is not None and grid in registry.grid.cells:
        lat, lon = registry.grid.centroid(grid)
    for name in sorted(names):
        registry.add(Device(id=name, kind=kind, location=Location(lat=lat, lon=lon),  # type: ignore[arg-type]
                            grid_code=grid or None))


async def _real_cases(req: BacktestRequest, settings: Settings) -> list[Case] | None:
    from gridsentinel.cases.store import SqlCaseStore

    url = req.database_url or settings.database_url
    if url.startswith("sqlite") and ":memory:" not in url:
        path = Path(url.split(":///", 1)[-1])
        if not path.exists():
            return None  # no live case store here: no agreement to report
    store = await SqlCaseStore.open(url)
    try:
        found: list[Case] = []
        while True:
            page = await store.list_cases(CaseQuery(opened_from=req.since - req.tolerance_s,
                                                    opened_to=req.until + req.tolerance_s,
                                                    limit=1000, offset=len(found)))
            found += page
            if len(page) < 1000:
                return found
    finally:
        await store.close()


async def run_backtest(req: BacktestRequest, settings: Settings) -> tuple[dict[str, Any], Path | None]:
    """Replay and report; returns the JSON summary and the report folder (when ``out_dir`` is set)."""
    path = _detectors_path(req.config_path)
    text = read_text(path)
    configs = {"candidate": load_config_text(text, str(path))}
    if req.against_live:
        with VersionStore.default(settings.run_dir) as versions:
            configs["live"] = load_config_text(live_text(settings, versions), "live config")
    config_dir = _config_dir(req, settings)
    catalog = load_catalog(config_dir)
    registry = Registry.load(config_dir)
    adjacency = registry.grid.neighbours() if registry.grid is not None else {}

    source: Any
    if req.source == "csv":
        if req.csv_path is None:
            raise SourceError("--source csv needs a PATH")
        source = CsvSource(req.csv_path, since=req.since, until=req.until, kind=req.csv_kind,
                           grid_code=req.csv_grid)
        _csv_devices(registry, source, req.csv_kind, req.csv_grid)
        label = f"csv {req.csv_path}"
    else:
        source = InfluxSource(settings, req.since, req.until, bucket=req.bucket)
        label = f"InfluxDB bucket {source.bucket}"
    runs = [Run(name, f"{name}:{c.version}", c, make_engine(c, registry, f"{c.version}", catalog))
            for name, c in configs.items()]
    bt = Backtest(runs, catalog, adjacency, check_every_s=req.check_every_s)
    bar = ProgressBar(source.count() if req.progress else None, force=False)
    bar.enabled = bar.enabled and req.progress
    await bt.feed(source, bar)
    bar.close(bt.readings)

    real = await _real_cases(req, settings)
    summary: dict[str, Any] = {
        "source": label, "period": {"since": req.since, "until": req.until}, "readings": bt.readings,
        "devices": len({k[0] for k in bt.series}), "real_cases": None if real is None else len(real),
        "grid_prefix_digits": req.prefix_digits,
        "runs": {run.name: run_summary(run, prefix_digits=req.prefix_digits, real=real,
                                       tolerance_s=req.tolerance_s) for run in runs},
    }
    if "live" in summary["runs"]:
        summary["difference"] = difference(summary["runs"]["candidate"], summary["runs"]["live"])
    out = req.out_dir
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        (out / "report.html").write_text(html_report.render(summary, bt, configs, registry, real or []),
                                         encoding="utf-8")
    return summary, out


def run_sync(req: BacktestRequest, settings: Settings) -> tuple[dict[str, Any], Path | None]:
    return asyncio.run(run_backtest(req, settings))
