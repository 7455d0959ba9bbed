"""Children die with their parent, and a later run stops what an earlier one left behind (real processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gridsentinel.children import alive, reap, start_time

pytestmark = pytest.mark.unit


def _gone(pid: int, started: int | None, within_s: float = 30.0) -> bool:
    deadline = time.monotonic() + within_s  # a generous wait for the kernel, not a timing assertion
    while alive(pid, started) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not alive(pid, started)


def test_a_child_dies_when_its_parent_is_killed_hard(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import subprocess, sys
        from gridsentinel.children import die_with_parent
        child = subprocess.Popen(["sleep", "600"], start_new_session=True, preexec_fn=die_with_parent())
        print(child.pid, flush=True)
        sys.stdin.read()
        """)
    with subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True) as parent:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        started = start_time(child)
        try:
            assert alive(child, started)
            parent.kill()  # kill -9: no handler, no finally
            parent.wait()
            assert _gone(child, started)
        finally:
            if alive(child, started):
                os.killpg(child, signal.SIGKILL)


def test_reap_stops_the_recorded_leftovers_of_a_dead_run(tmp_path: Path) -> None:
    leftover = subprocess.Popen(["sleep", "600"], start_new_session=True)
    started = start_time(leftover.pid)
    pid_file = tmp_path / "demo-8080.children.json"
    # a recorded pid that now belongs to nobody (or to another process) is left alone
    pid_file.write_text(json.dumps({"tag": "demo1", "parent": 1, "children": [
        {"name": "api", "pid": leftover.pid, "start": started},
        {"name": "gone", "pid": leftover.pid, "start": (started or 0) + 1}]}))
    try:
        record = reap(pid_file, timeout=10.0)
        leftover.wait(30)  # our own child: collect it so that it is not a zombie
        assert record["tag"] == "demo1" and record["reaped"] == [leftover.pid]
        assert not pid_file.exists()
        assert reap(pid_file) == {}
    finally:
        if leftover.poll() is None:
            leftover.kill()
            leftover.wait()
