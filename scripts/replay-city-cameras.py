"""Replay the city test's camera frames through the camera detectors, offline (no stack).

Builds the scenario ``tests/integration/test_city_in_a_box.py`` plays (seed, window, speed), stamps each
frame with the simulated clock's event time as the simulator sends it (``ts`` to the millisecond), renders
it as the camera's JPEG, decodes it with the frames stage's decoder, applies the frames stage's rate gate,
and feeds a ``CameraStack`` built from config/cameras.yaml. Prints every finding, and with ``--evidence``
the fire/smoke detector's evidence for every analysed frame of a camera scene.

Run: ``python scripts/replay-city-cameras.py [--seed 3] [--start 21:40] [--hours 8.5] [--evidence]``
"""

import argparse
import time

from gridsentinel.detectors.camera.config import CameraConfig, load_cameras
from gridsentinel.detectors.camera.stack import CameraStack
from gridsentinel.detectors.frames_stage import decode_jpeg, gate_fps
from gridsentinel.settings import REPO_ROOT
from gridsentinel.simulator import footage
from gridsentinel.simulator.clock import SimClock, parse_start
from gridsentinel.simulator.scenario import build_scenario


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=3, help="scenario seed (the city test's: 3)")
    parser.add_argument("--start", default="21:40", help="window start, as simulate --start (default 21:40)")
    parser.add_argument("--hours", type=float, default=8.5, help="window length in hours (default 8.5)")
    parser.add_argument("--speed", type=float, default=240.0, help="clock speed outside scenes (default 240)")
    parser.add_argument("--evidence", action="store_true", help="print fire/smoke evidence inside scenes")
    args = parser.parse_args()
    config_dir = REPO_ROOT / "config"
    duration = args.hours * 3600
    probe = build_scenario(config_dir, args.seed, duration)
    now = time.time()
    clock = SimClock(duration, args.speed, [(s.start, s.end) for s in probe.scenes], 2.0, now + 2.0,
                     window_start=parse_start(args.start, duration, now))
    scenario = build_scenario(config_dir, args.seed, duration, window_start=clock.window_start)
    cameras = load_cameras(config_dir / "cameras.yaml")
    configured = {c.camera_id: c for c in cameras.cameras}
    stacks: dict[str, CameraStack] = {}
    last: dict[str, float] = {}
    for m in scenario.messages:
        if m.type != "frame":
            continue
        ts = float(f"{clock.event_time(m.at):.3f}")  # the simulator's ts user property
        if m.device_id not in stacks:
            cfg = configured.get(m.device_id) or CameraConfig(camera_id=m.device_id)
            stacks[m.device_id] = CameraStack(cfg, category_of=lambda *_: ("", ""), config_version=cameras.version)
        stack = stacks[m.device_id]
        prev = last.get(m.device_id)
        if prev is not None and (ts <= prev or ts - prev < 1.0 / gate_fps(stack.config, stack) - 1e-6):
            continue  # the frames stage drops it before decoding
        last[m.device_id] = ts
        image = decode_jpeg(footage.render(*m.frame))
        if isinstance(image, str):
            raise SystemExit(f"frame at offset {m.at}: {image}")
        found = stack.update(image, ts)
        fire = stack.detectors.get("fire_smoke")
        if args.evidence and fire is not None and any(s.start <= m.at < s.end for s in scenario.scenes):
            print(f"{m.device_id} offset {m.at:9.1f} footage {m.frame}: {fire.last_evidence}")
        for d in found:
            print(f"FOUND {m.device_id} offset {m.at:.1f}: {d.detector} {d.kind}: {d.message} {d.evidence}")


if __name__ == "__main__":
    main()
