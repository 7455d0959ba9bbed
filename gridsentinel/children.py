"""Child processes of a foreground command (`demo`, benchmarks): started, watched, stopped cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .errors import ServiceError


class Children:
    def __init__(self, log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.log_dir = log_dir
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "gridsentinel.cli", *args],
                                    env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.procs[name] = proc
        return proc

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
