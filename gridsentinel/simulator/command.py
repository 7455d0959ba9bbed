"""``gridsentinel simulate``: arguments and entry point (the CLI wires ``add_arguments`` and ``run``)."""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from gridsentinel.errors import ConfigError
from gridsentinel.settings import Settings
from gridsentinel.simulator.clock import LOCAL, SimClock, parse_start
from gridsentinel.simulator.scenario import Scenario, build_scenario, min_duration_s


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=1, help="random seed: same seed, same script (default 1)")
    parser.add_argument("--speed", type=float, default=60.0,
                        help="simulated seconds per real second outside camera scenes (default 60)")
    parser.add_argument("--scene-speed", type=float, default=2.0,
                        help="clock speed during camera incidents, so cameras stream frames (default 2)")
    parser.add_argument("--duration", type=float, default=None,
                        help="simulated window in seconds (default: the shortest that fits the script, "
                             "about 6.5 h); it ends at the moment the run ends")
    parser.add_argument("--start", default=None,
                        help="event time of the window's start: HH:MM (the latest such Asia/Shanghai time whose "
                             "whole window has passed, e.g. 21:40 for a night), an ISO 8601 time or Unix "
                             "seconds (default: the window ends at the moment the run ends)")
    parser.add_argument("--ground-truth", type=Path, default=None,
                        help="where to write the incidents' ground truth (default "
                             "<run dir>/simulator/ground-truth.json)")
    parser.add_argument("--id-prefix", default="",
                        help="simulate only the registry's devices whose id starts with this")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the script's incidents and write the ground truth; publish nothing")


def ground_truth(scenario: Scenario, clock: SimClock, speed: float) -> dict[str, Any]:
    """The ground truth file: the window and every incident with absolute event times."""
    return {
        "seed": scenario.seed,
        "speed": speed,
        "window": {"start": clock.window_start, "end": clock.event_time(scenario.duration_s),
                   "real_length_s": clock.real_length_s},
        "incidents": [{
            "id": i.id, "kind": i.kind, "device_id": i.device_id, "grid_code": i.grid_code,
            "category": i.category, "detection_kind": i.detection_kind, "detector": i.detector,
            "start": clock.event_time(i.start), "end": clock.event_time(i.end),
            "expected_delay_s": i.expected_delay_s, "why": i.why,
        } for i in scenario.incidents],
    }


def run(args: argparse.Namespace, settings: Settings) -> int:
    from gridsentinel.simulator.publisher import play
    from gridsentinel.stack.services import Mosquitto

    duration = args.duration if args.duration is not None else min_duration_s(settings.config_dir)
    real_start = time.time() + 2.0  # connections first
    probe = build_scenario(settings.config_dir, args.seed, duration, id_prefix=args.id_prefix)
    scenes = [(s.start, s.end) for s in probe.scenes]
    try:
        start = None if args.start is None else parse_start(args.start, duration, time.time())
        clock = SimClock(duration, args.speed, scenes, args.scene_speed, real_start, window_start=start)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    scenario = build_scenario(settings.config_dir, args.seed, duration, window_start=clock.window_start,
                              id_prefix=args.id_prefix)
    truth = ground_truth(scenario, clock, args.speed)
    path = args.ground_truth or settings.run_dir / "simulator" / "ground-truth.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(truth, indent=1) + "\n")
    print(f"simulating {duration / 3600:.2f} h of district {len(scenario.devices)} devices "
          f"({_local(clock.window_start)} to {_local(clock.event_time(duration))} Asia/Shanghai) in "
          f"{clock.real_length_s / 60:.1f} min (x{args.speed:g}, scenes x{args.scene_speed:g}); "
          f"ground truth in {path}")
    for i in truth["incidents"]:
        at = _local(i["start"])
        print(f"  {at}  {i['kind']:<15} {i['device_id']:<12} {i['grid_code']}  {i['category']}")
    if args.dry_run:
        return 0
    devices = {d.id: d for d in scenario.devices}
    reclaimed = Mosquitto(settings).ensure_simulated(sorted(devices))
    if reclaimed:
        print(f"the device registry had issued {len(reclaimed)} of the simulated devices their own credentials "
            f"({', '.join(reclaimed[:5])}{' ...' if len(reclaimed) > 5 else ''}): they have the stack's derived "
            f"passwords again, so the simulator can publish as them")
    counts = play(list(scenario.by_time()), devices, clock, settings)
    print(f"done: {counts['telemetry']} readings, {counts['frame']} frames, "
          f"{counts['status']} status messages")
    return 0


def _local(t: float) -> str:
    return datetime.fromtimestamp(t, LOCAL).strftime("%m-%d %H:%M:%S")
