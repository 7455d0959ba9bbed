"""The latency benchmark's storage-stall share (the kernel's pressure stall information for I/O)."""

import time
from pathlib import Path

import pytest

from gridsentinel.bench.common import IoStalls, io_stall_us

pytestmark = pytest.mark.unit


def test_the_full_line_of_a_pressure_file_gives_the_stalled_microseconds(tmp_path: Path) -> None:
    psi = tmp_path / "io"
    psi.write_text("some avg10=1.09 avg60=3.09 avg300=5.55 total=426283136\n"
                   "full avg10=1.03 avg60=2.83 avg300=5.25 total=319737068\n")
    assert io_stall_us(str(psi)) == 319737068
    assert io_stall_us(str(tmp_path / "absent")) is None  # a kernel without PSI: nothing to report
    psi.write_text("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    assert io_stall_us(str(psi)) is None


def test_each_seconds_share_is_the_stalled_time_over_the_time_between_reads() -> None:
    # a scripted counter: 0.3 s stalled in the first interval, none in the second, then 0.05 s
    totals = iter([1_000_000, 1_300_000, 1_300_000, 1_350_000, 1_350_000])
    last = [0]

    def read() -> int:
        last[0] = next(totals, last[0])
        return last[0]

    stalls = IoStalls(every_s=0.05, read=read)
    stalls.start()
    deadline = time.monotonic() + 10  # a bound on waiting for three reads, not a timed assertion
    while len(stalls._shares) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    out = stalls.stop()
    assert out is not None
    by_second = out["full_pct_by_second"]
    # 0.3 s of stall in ~0.05 s of wall time is far more than 100 %: the share is per wall second
    assert by_second[0] > by_second[2] > by_second[1] == 0.0
    assert out["full_pct"] > 0


def test_no_report_where_the_kernel_has_no_pressure_information() -> None:
    stalls = IoStalls(read=lambda: None)
    stalls.start()
    assert stalls.stop() is None
