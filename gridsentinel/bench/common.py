"""Shared benchmark helpers: process CPU/memory sampling, percentiles, output, dropping a run's topics."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gridsentinel.core.topics import delete_topics

from ..errors import ServiceError


@dataclass
class ProcUsage:
    cpu_s: float
    peak_rss_mb: float


def proc_usage(pid: int) -> ProcUsage | None:
    """CPU seconds so far (user + system) and peak resident memory of a live process."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(") ", 1)[1].split()
        with open(f"/proc/{pid}/status") as fh:
            status = dict(line.split(":", 1) for line in fh if ":" in line)
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    peak = float(status.get("VmHWM", "0 kB").split()[0]) / 1024
    return ProcUsage(cpu, peak)


class CpuMeter:
    """CPU used by a set of processes between start() and stop(), as cores busy on average."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._start: dict[str, float] = {}
        self._t0 = 0.0

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._start = {n: u.cpu_s for n, p in self.pids.items() if (u := proc_usage(p))}

    def stop(self) -> dict[str, dict[str, float]]:
        wall = max(1e-9, time.monotonic() - self._t0)
        out = {}
        for name, pid in self.pids.items():
            usage = proc_usage(pid)
            if usage is None or name not in self._start:
                continue
            out[name] = {"cpu_cores": round((usage.cpu_s - self._start[name]) / wall, 2),
                         "peak_rss_mb": round(usage.peak_rss_mb, 1)}
        return out


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]

# Partitions of the benchmarks' topics (core.topics.ensure_topics' default): more workers would sit idle.
PARTITIONS = 4


def worker_counts(text: str) -> list[int]:
    """``--workers``: one count or a comma-separated list, each 1..4.

    >>> worker_counts("1,2,4")
    [1, 2, 4]
    """
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected worker counts like 1 or 1,2,4, got {text!r}") from None
    if not counts or any(not 1 <= c <= PARTITIONS for c in counts):
        raise argparse.ArgumentTypeError(f"worker counts must be 1..{PARTITIONS} (the topic's partitions), "
                                         f"got {text!r}")
    return counts


def noise_spec(text: str) -> tuple[float, float]:
    """``--noise BURN/PERIOD``: a neighbour that keeps one core busy for BURN seconds in every PERIOD.

    >>> noise_spec("1/3")
    (1.0, 3.0)
    """
    burn, slash, period = text.partition("/")
    try:
        spec = (float(burn), float(period))
    except ValueError:
        spec = (0.0, 0.0)
    if not slash or not 0 < spec[0] <= spec[1] <= 60:
        raise argparse.ArgumentTypeError(f"expected BURN/PERIOD in seconds with 0 < BURN <= PERIOD <= 60, like "
                                         f"1/3 (a core busy 1 s in every 3 s), got {text!r}")
    return spec


# The neighbour's loop: busy for `burn` seconds, asleep for the rest of `period`, until it is stopped.
_NOISE_LOOP = """
import sys, time
burn, period = float(sys.argv[1]), float(sys.argv[2])
while True:
    start = time.monotonic()
    while time.monotonic() - start < burn:
        pass
    time.sleep(max(0.0, period - burn))
"""


class Noise:
    """A noisy neighbour for a benchmark's run: another process that keeps one core busy ``burn`` seconds in
    every ``period`` (what another tenant of the host, autovacuum or a backup does to the pipeline, made
    repeatable). :meth:`stop` ends it and says what it took."""

    def __init__(self, burn_s: float, period_s: float) -> None:
        self.burn_s, self.period_s = burn_s, period_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._t0 = 0.0

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._proc = subprocess.Popen([sys.executable, "-c", _NOISE_LOOP, str(self.burn_s), str(self.period_s)])

    def stop(self) -> dict[str, float]:
        """End the neighbour (it is gone when this returns); its settings and the cores it kept busy."""
        proc, self._proc = self._proc, None
        wall = max(1e-9, time.monotonic() - self._t0)
        usage = proc_usage(proc.pid) if proc is not None else None
        if proc is not None:
            proc.kill()
            proc.wait()
        return {"burn_s": self.burn_s, "period_s": self.period_s,
                "cpu_cores": round(usage.cpu_s / wall, 2) if usage is not None else 0.0}


def io_stall_us(path: str = "/proc/pressure/io") -> int | None:
    """Microseconds in which every task that had work to do waited for storage (the kernel's pressure stall
    information, "full" line, since boot); None where the kernel does not report it."""
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith("full"):
                    return int(line.rsplit("total=", 1)[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


class IoStalls:
    """The share of each second in which the machine stood still waiting for storage, while a benchmark's
    phase runs (a daemon thread reads :func:`io_stall_us` once a second). A slow second of a latency run
    with a high share was the disk, not the pipeline's CPU (issue 15, session 19)."""

    def __init__(self, every_s: float = 1.0, read: Callable[[], int | None] = io_stall_us) -> None:
        self.every_s, self._read = every_s, read
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._shares: list[float] = []
        self._first: int | None = None
        self._t0 = 0.0

    def start(self) -> None:
        self._first, self._t0 = self._read(), time.monotonic()
        if self._first is None:
            return
        self._thread = threading.Thread(target=self._run, name="io-stalls", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last, at = self._first, self._t0
        while not self._stop.wait(self.every_s):
            now, t = self._read(), time.monotonic()
            if now is None or last is None:
                return
            self._shares.append((now - last) / 1e6 / max(1e-9, t - at))
            last, at = now, t

    def stop(self) -> dict[str, Any] | None:
        """The whole phase's share and each second's, in %; None where the kernel does not report stalls."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2 * self.every_s)
        end = self._read()
        if self._first is None or end is None:
            return None
        wall = max(1e-9, time.monotonic() - self._t0)
        return {"full_pct": round(100 * (end - self._first) / 1e6 / wall, 1),
                "full_pct_by_second": [round(100 * s, 1) for s in self._shares]}


def first_child(pid: int) -> int | None:
    """The first child process of ``pid`` (the worker command runs its app in a supervised child)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            kids = fh.read().split()
    except OSError:
        return None
    return int(kids[0]) if kids else None


def rss_mb(pid: int) -> float | None:
    """Resident memory of a live process now, in MB."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return round(float(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


# A fixed pure-Python loop timed beside every benchmark's figures, so figures from different machines (or
# from one machine under different load) can be compared: sum(range(10**8)) took 3.7-4.4 s where issue #6
# was found. A tenth of it is timed, best of three, and scaled: seconds stay comparable, the run stays short.
CALIBRATION_LOOP = 10**7
CALIBRATION_SCALE = 10**8 // CALIBRATION_LOOP


def calibration(repeat: int = 3) -> dict[str, object]:
    """Seconds a ``sum(range(10**8))`` would take on this machine now (best of ``repeat``, measured on a tenth)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        sum(range(CALIBRATION_LOOP))
        best = min(best, time.perf_counter() - t0)
    return {"sum_range_1e8_s": round(best * CALIBRATION_SCALE, 2),
            "method": f"best of {repeat} x sum(range(10**7)), x{CALIBRATION_SCALE}",
            "python": platform.python_version()}


def calibration_line(cal: dict[str, object]) -> str:
    return (f"CPU calibration: sum(range(10**8)) equivalent {cal['sum_range_1e8_s']} s "
            f"({cal['method']}, Python {cal['python']})")


def emit(result: dict[str, object], as_json: bool, render: str, indent: int | None = 2) -> None:
    """Print a benchmark's result, as JSON or as text, with the CPU calibration (JSON key ``calibration``)."""
    cal = calibration()
    print(json.dumps({**result, "calibration": cal}, indent=indent) if as_json
          else f"{render}\n{calibration_line(cal)}")


def drop_topics(bootstrap: str, prefix: str, app_id: str) -> None:
    """Delete a run's topics and its worker's Faust topics (the broker keeps them otherwise); best effort:
    a failure is reported, not raised, so it never hides the benchmark's own result or error."""
    try:
        delete_topics(bootstrap, prefix, f"{app_id}-")
    except ServiceError as exc:
        print(f"warning: {exc}", file=sys.stderr, flush=True)
