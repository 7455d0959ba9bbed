"""Child processes of a foreground command (`demo`, benchmarks): started, watched, stopped cleanly.

Children die with their parent however it dies: an orderly stop (``stop_all``) sends SIGTERM, and each
child also asks the kernel for SIGKILL when its parent dies (Linux ``PR_SET_PDEATHSIG``), so a parent
killed with ``kill -9`` leaves no orphans holding ports or topics. Each child leads its own process group
(Ctrl-C in the terminal reaches only the parent, which stops them in order). With a ``pid_file`` the
children are also recorded on disk, so the next run can find and stop the leftovers of a run whose
children outlived it anyway (:func:`reap`).

Start children from the main thread: the kernel's parent-death signal follows the thread that forked.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import ServiceError

PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn`` that has the child killed (SIGKILL) when this process dies."""
    parent = os.getpid()
    libc = ctypes.CDLL(None, use_errno=True)  # loaded here: the child only calls it

    def hook() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the request took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks after boot), to tell it from a later process with its pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def alive(pid: int, started: int | None) -> bool:
    now = start_time(pid)
    return now is not None and (started is None or now == started) and not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def reap(pid_file: Path, timeout: float = 20.0) -> dict[str, Any]:
    """Stop the recorded children of an earlier run that are still alive (their process groups: SIGTERM,
    then SIGKILL after ``timeout``) and forget the file. Returns what the file recorded (empty if none)."""
    try:
        record: dict[str, Any] = json.loads(pid_file.read_text())
    except (OSError, ValueError):
        return {}
    left = [(int(c["pid"]), c.get("start")) for c in record.get("children", [])]
    left = [(pid, started) for pid, started in left if alive(pid, started)]
    record["reaped"] = [pid for pid, _ in left]
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        for pid, _ in left:
            try:
                os.killpg(pid, sig)  # each child leads its own group: its own children go too
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + wait
        while (left := [(p, s) for p, s in left if alive(p, s)]) and time.monotonic() < deadline:
            time.sleep(0.2)
    pid_file.unlink(missing_ok=True)
    if left:
        raise ServiceError(f"could not stop the leftover processes {[p for p, _ in left]} of an earlier run")
    return record


class Children:
    def __init__(self, log_dir: Path, env: dict[str, str] | None = None, *, pid_file: Path | None = None,
                 note: dict[str, Any] | None = None) -> None:
        """``pid_file``: record the children there (with ``note``) for :func:`reap`; removed by ``stop_all``."""
        self.log_dir = log_dir
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.pid_file = pid_file
        self.note = dict(note or {})
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "gridsentinel.cli", *args],
                                    env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, preexec_fn=die_with_parent())
        self.procs[name] = proc
        self._record()
        return proc

    def _record(self) -> None:
        if self.pid_file is None:
            return
        children = [{"name": n, "pid": p.pid, "start": start_time(p.pid)} for n, p in self.procs.items()]
        tmp = self.pid_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({**self.note, "parent": os.getpid(), "children": children}) + "\n")
        tmp.replace(self.pid_file)

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_log(self, name: str, marker: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.log(name):
            self.check()
            if time.monotonic() > deadline:
                raise ServiceError(f"{name} did not report '{marker}' within {timeout:.0f}s; "
                                   f"see {self.log_dir / (name + '.log')}")
            time.sleep(0.2)

    def check(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = "\n".join(self.log(name).splitlines()[-15:])
                raise ServiceError(f"{name} exited with {proc.returncode}; its log ends with:\n{tail}")

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.kill()
        proc.wait()
        self._record()

    def stop_all(self, timeout: float = 20.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        if self.pid_file is not None:
            self.pid_file.unlink(missing_ok=True)
