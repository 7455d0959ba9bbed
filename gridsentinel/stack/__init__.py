"""The local stack: `gridsentinel up | down | status`."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from ..settings import Settings
from .services import Health, InfluxDB, Kafka, Mosquitto, Progress, Service, all_services, mosquitto_tool

__all__ = ["InfluxDB", "Kafka", "Mosquitto", "Service", "ServiceState", "down", "mosquitto_tool",
           "progress_printer", "status", "up"]


def progress_printer(stream=sys.stderr) -> Progress:  # type: ignore[no-untyped-def]
    start = time.monotonic()

    def say(message: str) -> None:
        elapsed = int(time.monotonic() - start)
        print(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {message}", file=stream, flush=True)

    return say


@dataclass
class ServiceState:
    name: str
    running: bool
    health: Health
    version: str
    address: str
    pid: int | None


def _select(settings: Settings, only: list[str] | None) -> list[Service]:
    services = all_services(settings)
    if only:
        services = [s for s in services if s.name in only]
    return services


def up(settings: Settings, progress: Progress, only: list[str] | None = None) -> list[ServiceState]:
    """Install what is missing and start what is not running; idempotent."""
    for svc in _select(settings, only):
        health = svc.health() if svc.proc.running() else Health(False, "stopped")
        if health.ok:
            progress(f"{svc.name}: already running ({health.detail})")
            continue
        if svc.proc.running():
            progress(f"{svc.name}: running but not ready ({health.detail}); waiting")
            try:
                svc.wait_ready(30)
                svc.after_ready(progress)
                progress(f"{svc.name}: ready")
                continue
            except Exception:
                progress(f"{svc.name}: still not ready; restarting it")
                svc.proc.stop()
        svc.install(progress)
        progress(f"{svc.name}: starting on {svc.address()}")
        t0 = time.monotonic()
        svc.start(progress)
        progress(f"{svc.name}: ready in {time.monotonic() - t0:.1f}s")
    return status(settings, only)


def down(settings: Settings, progress: Progress, only: list[str] | None = None) -> None:
    """Stop only the services this stack started (tracked by pid files)."""
    for svc in reversed(_select(settings, only)):
        if svc.proc.stop():
            progress(f"{svc.name}: stopped")
        else:
            progress(f"{svc.name}: was not running")


def status(settings: Settings, only: list[str] | None = None) -> list[ServiceState]:
    states = []
    for svc in _select(settings, only):
        pid = svc.proc.pid()
        health = svc.health() if pid else Health(False, "stopped")
        states.append(ServiceState(svc.name, pid is not None, health, svc.version(), svc.address(), pid))
    return states
