"""The benchmarks' noisy neighbour: ``--noise BURN/PERIOD`` and the process behind it."""

import argparse
import time

import pytest

from gridsentinel.bench.common import Noise, noise_spec, proc_usage

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text", ["1", "0/3", "4/3", "a/b", "1/120", "-1/3"])
def test_a_noise_spec_outside_its_bounds_is_refused_with_the_form_to_use(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected BURN/PERIOD"):
        noise_spec(text)


def test_a_noise_spec_is_burn_and_period_in_seconds() -> None:
    assert noise_spec("0.5/2") == (0.5, 2.0)
    assert noise_spec("3/3") == (3.0, 3.0)  # a core busy all along


def test_the_neighbour_burns_cpu_until_stopped_and_is_gone_after() -> None:
    noise = Noise(0.05, 0.1)
    noise.start()
    proc = noise._proc
    assert proc is not None
    deadline = time.monotonic() + 30  # a wait for it to start burning, not a timed assertion
    while (usage := proc_usage(proc.pid)) is not None and usage.cpu_s < 0.02 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None  # still running: it loops until stopped
    report = noise.stop()
    assert proc.poll() is not None  # reaped: no busy process left behind
    assert report["burn_s"] == 0.05 and report["period_s"] == 0.1 and report["cpu_cores"] > 0.0
