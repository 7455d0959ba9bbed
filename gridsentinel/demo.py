"""`gridsentinel demo`: the whole product on this machine — a simulated district turning into cases.

Brings up the stack (Mosquitto, Kafka, InfluxDB), starts the gateway, one worker with every stage this
build has (ingest, detect, cases, frames, live-config — whichever exist in ``ingest.app.STAGES``) and the
API with the dashboard, then plays the simulator (docs/simulator.md) against them. Prints where to look;
Ctrl-C stops everything it started (and only that).
"""

from __future__ import annotations

import argparse
import time

from . import stack
from .children import Children
from .settings import Settings

WANTED_STAGES = ("ingest", "detect", "cases", "frames", "live-config")
VIEWER_TOKEN = "gs-demo-viewer-0f3c9a1e7b"  # docs/api.md: development-only demo tokens
DISPATCHER_TOKEN = "gs-demo-dispatcher-5d2e8b4c1a"


def available_stages() -> list[str]:
    from .ingest.app import STAGES

    return [s for s in WANTED_STAGES if s in STAGES]


def run_demo(settings: Settings, *, port: int = 8080, speed: float = 120.0, seed: int = 1,
             duration_s: float | None = None, keep_running: bool = True, rate_hz: float | None = None) -> int:
    """Run the demo until Ctrl-C. ``rate_hz`` and a ``duration_s`` shorter than the script are what the
    old CLI passes (``--duration``/``--rate`` of the first demo); they are ignored until it is rewired."""
    from .simulator.clock import SimClock
    from .simulator.command import ground_truth
    from .simulator.publisher import play
    from .simulator.scenario import build_scenario, min_duration_s
    from .stack.services import Mosquitto

    say = stack.progress_printer()
    stack.up(settings, say)
    duration = max(duration_s or 0.0, min_duration_s(settings.config_dir))
    stages = available_stages()
    children = Children(settings.run_dir / "demo")
    try:
        say(f"starting the gateway, the worker (stages: {' '.join(stages)}) and the API")
        children.start("gateway", "gateway", "--client-id", "gs-demo-gateway")
        children.start("worker", "worker", "--app-id", "gridsentinel-demo", "--stages", *stages)
        children.start("api", "api", "--port", str(port))
        children.wait_log("gateway", " ready: ")
        children.wait_log("api", "Uvicorn running", timeout=60)
        url = f"http://127.0.0.1:{port}/dashboard"
        real_start = time.time() + 3.0
        probe = build_scenario(settings.config_dir, seed, duration)
        clock = SimClock(duration, speed, [(s.start, s.end) for s in probe.scenes], 2.0, real_start)
        scenario = build_scenario(settings.config_dir, seed, duration, window_start=clock.window_start)
        truth_path = settings.run_dir / "demo" / "ground-truth.json"
        import json

        truth_path.write_text(json.dumps(ground_truth(scenario, clock, speed), indent=1) + "\n")
        devices = {d.id: d for d in scenario.devices}
        Mosquitto(settings).ensure_devices(sorted(devices))
        print(f"\n  Dashboard:         {url}\n  Viewer token:      {VIEWER_TOKEN}\n"
              f"  Dispatcher token:  {DISPATCHER_TOKEN}\n  API docs:          http://127.0.0.1:{port}/docs\n"
              f"  Ground truth:      {truth_path}\n  Logs:              {children.log_dir}\n\n"
              f"  Simulating {duration / 3600:.1f} h of the district in {clock.real_length_s / 60:.1f} min: "
              f"{len(scenario.incidents)} scripted incidents. Ctrl-C stops everything.\n", flush=True)
        play(list(scenario.by_time()), devices, clock, settings, say=say,
             sleep=lambda s: _sleep_checking(children, s))
        say("the simulated window has caught up with now; the dashboard stays up until Ctrl-C")
        while keep_running:
            children.check()
            time.sleep(1.0)
    except KeyboardInterrupt:
        say("interrupted")
    finally:
        say("stopping the API, the worker and the gateway")
        children.stop_all()
    return 0


def _sleep_checking(children: Children, seconds: float) -> None:
    """Sleep, but notice a dead child within a second."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        children.check()
        time.sleep(min(1.0, left))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8080, help="API and dashboard port (default 8080)")
    parser.add_argument("--speed", type=float, default=120.0,
                        help="simulated seconds per real second (default 120: ~6.5 h in ~5 min)")
    parser.add_argument("--seed", type=int, default=1, help="simulator seed (default 1)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    return run_demo(settings, port=args.port, speed=args.speed, seed=args.seed)
