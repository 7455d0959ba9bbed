"""`gridsentinel demo`: the whole product on this machine — a simulated district turning into cases.

Brings up the stack (Mosquitto, Kafka, InfluxDB), starts the gateway, one worker with every stage this
build has (ingest, detect, cases, frames, live-config — whichever exist in ``worker.stages.STAGES``) and the
API with the dashboard, then plays the simulator (docs/simulator.md) against them. Prints where to look;
Ctrl-C stops everything it started (and only that).

Each run is a fresh district: its own topic prefix, consumer group, InfluxDB bucket and case store (a
SQLite file under ``<run dir>/demo/<tag>/``, unless ``GS_DATABASE_URL`` is set). The simulated window
ends at "now" and lasts hours, so two runs an hour apart overlap in event time: sharing detector state,
readings or open cases with an earlier run would make the new readings "too late" for the detectors,
mix two runs in the signal charts and fold new incidents into old cases. The run's topics and bucket
are deleted when it stops.

However the demo ends, its children end with it: Ctrl-C, SIGTERM and SIGHUP (a closed terminal) stop
them in order, a closed stdout/stderr (``| tee`` ended by the same Ctrl-C) does not interrupt that, and
after ``kill -9`` the kernel kills them (``children.die_with_parent``). One demo runs per API port (a lock
file); the next one stops whatever an earlier dead run left behind and deletes its topics and bucket.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import io
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TextIO, cast

from . import stack
from .children import Children, reap
from .errors import ServiceError
from .settings import Settings

WANTED_STAGES = ("ingest", "detect", "cases", "frames", "live-config")
DEMO_TOKEN_S = 86400.0  # the demo's own users' tokens last a day (each run makes new ones)


def available_stages() -> list[str]:
    from gridsentinel.worker.stages import STAGES

    return [s for s in WANTED_STAGES if s in STAGES]


def run_demo(settings: Settings, *, port: int = 8080, speed: float = 120.0, seed: int = 1,
             duration_s: float | None = None, keep_running: bool = True, rate_hz: float | None = None,
             id_prefix: str = "") -> int:
    """Run the demo until Ctrl-C. ``rate_hz`` and a ``duration_s`` shorter than the script are what the
    old CLI passes (``--duration``/``--rate`` of the first demo); they are ignored until it is rewired."""
    with _survive_closed_output() as err, _stop_on_signals(), _one_demo_per_port(settings.run_dir / "demo",
                                                                                  port) as pid_file:
        return _run(settings, say=stack.progress_printer(stream=err), pid_file=pid_file, port=port,
                    speed=speed, seed=seed, duration_s=duration_s, keep_running=keep_running,
                    id_prefix=id_prefix)


def _run(settings: Settings, *, say: stack.Progress, pid_file: Path, port: int, speed: float, seed: int,
         duration_s: float | None, keep_running: bool, id_prefix: str) -> int:
    from .simulator.clock import SimClock
    from .simulator.command import ground_truth
    from .simulator.publisher import play
    from .simulator.scenario import build_scenario, min_duration_s
    from .stack.services import Mosquitto

    stack.up(settings, say)
    _clean_up_after_a_dead_run(settings, pid_file, port, say)
    duration = max(duration_s or 0.0, min_duration_s(settings.config_dir))
    stages = available_stages()
    tag = f"demo{int(time.time()):x}"
    space = settings.with_(topic_prefix=f"{tag}.", influx_bucket=tag)
    run_dir = settings.run_dir / "demo" / tag
    env = {**_demo_webhook_secrets(settings), **_namespace_env(space, tag, run_dir)}
    children = Children(run_dir, env=env, pid_file=pid_file, note={"tag": tag, "port": port})
    _create_bucket(space)
    try:
        say(f"starting the gateway, the worker (stages: {' '.join(stages)}) and the API (run {tag})")
        children.start("gateway", "gateway", "--client-id", f"gs-{tag}-gateway")
        children.start("worker", "worker", "--app-id", f"gridsentinel-{tag}", "--stages", *stages)
        tokens = _demo_users(env.get("GS_DATABASE_URL", settings.database_url), tag)
        children.start("api", "api", "--port", str(port))
        children.wait_log("gateway", " ready: ")
        children.wait_log("api", "Uvicorn running", timeout=60)
        url = f"http://127.0.0.1:{port}/dashboard"
        real_start = time.time() + 3.0
        probe = build_scenario(settings.config_dir, seed, duration, id_prefix=id_prefix)
        clock = SimClock(duration, speed, [(s.start, s.end) for s in probe.scenes], 2.0, real_start)
        scenario = build_scenario(settings.config_dir, seed, duration, window_start=clock.window_start,
                                  id_prefix=id_prefix)
        truth_path = run_dir / "ground-truth.json"
        import json

        truth_path.write_text(json.dumps(ground_truth(scenario, clock, speed), indent=1) + "\n")
        devices = {d.id: d for d in scenario.devices}
        reclaimed = Mosquitto(settings).ensure_simulated(sorted(devices))
        if reclaimed:
            say(f"the device registry had issued {len(reclaimed)} of the simulated devices their own credentials "
                f"({', '.join(reclaimed[:5])}{' ...' if len(reclaimed) > 5 else ''}): they have the stack's derived "
                f"passwords again, so the simulator can publish as them")
        print(f"\n  Dashboard:         {url}  (sign in with a token below)\n"
              f"  Viewer token:      {tokens['viewer']}\n"
              f"  Dispatcher token:  {tokens['dispatcher']}\n"
              f"                     (this run's users {tag}-viewer and {tag}-dispatcher; valid 24 h)\n"
              f"  API docs:          http://127.0.0.1:{port}/docs\n"
              f"  Ground truth:      {truth_path}\n  Logs:              {children.log_dir}\n\n"
              f"  Simulating {duration / 3600:.1f} h of the district in about {clock.real_length_s / 60:.1f} "
              f"min if this machine keeps up (progress lines give the real pace): "
              f"{len(scenario.incidents)} scripted incidents. Ctrl-C stops everything.\n", flush=True)
        play(list(scenario.by_time()), devices, clock, settings, say=say,
             sleep=lambda s: _sleep_checking(children, s))
        took = time.time() - clock.real_start
        say(f"the simulated window has caught up with now after {took / 60:.1f} min (planned "
            f"{clock.real_length_s / 60:.1f}); from now on the district's devices report their normal signals "
            f"in real time (no more incidents); the dashboard stays up until Ctrl-C")
        chunk = 0
        while keep_running:  # the district goes on, live: else its devices would all be reported silent
            live_clock = SimClock(LIVE_CHUNK_S, 1.0, real_start=time.time())
            live = build_scenario(settings.config_dir, seed + 1 + chunk, LIVE_CHUNK_S, incidents=False,
                                  window_start=live_clock.window_start, id_prefix=id_prefix)
            play(list(live.by_time()), devices, live_clock, settings, say=lambda _: None,
                 sleep=lambda s: _sleep_checking(children, s))
            chunk += 1
    except KeyboardInterrupt:
        say("interrupted")
    finally:
        say("stopping the API, the worker and the gateway")
        children.stop_all()
        say(f"deleting the run's topics ({tag}.*) and bucket ({tag})")
        _drop_namespace(space)
    return 0


@contextlib.contextmanager
def _survive_closed_output() -> Iterator[TextIO]:
    """Keep going when whoever reads stdout/stderr goes away (``make run | tee log`` and Ctrl-C: tee dies
    first): the shutdown must not die of EPIPE half-way. Yields the stream for progress lines."""
    saved = sys.stdout, sys.stderr
    out, err = _PipeSafe(sys.stdout), _PipeSafe(sys.stderr)
    sys.stdout, sys.stderr = cast(TextIO, out), cast(TextIO, err)
    try:
        yield cast(TextIO, err)
    finally:
        sys.stdout, sys.stderr = saved


class _PipeSafe(io.TextIOBase):
    """A text stream that turns into /dev/null when its reader has gone (EPIPE; EIO: a hung-up terminal)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream: IO[str] = stream

    def write(self, text: str) -> int:
        try:
            self._stream.write(text)
        except OSError:
            self._gone()
        return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError:
            self._gone()

    def _gone(self) -> None:
        # point the descriptor itself at /dev/null, so that buffered text and the interpreter's final flush
        # of this stream go nowhere instead of raising again
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):
            self._stream = open(os.devnull, "w")  # not a file descriptor: write nowhere from now on
        finally:
            os.close(devnull)
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP stop the demo (its ``finally`` stops the children). SIGINT is set here too:
    a process started in the background by a non-interactive shell (a CI runner, ``cmd &`` in a script)
    inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler of its own."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    saved = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _one_demo_per_port(root: Path, port: int) -> Iterator[Path]:
    """Hold the port's demo lock (the kernel drops it however the holder dies); yields the pid file where
    the run records its children."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"demo-{port}.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "?"
            raise ServiceError(f"another demo on port {port} is running (pid {holder}); stop it first, "
                               f"or give this one another --port") from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield root / f"demo-{port}.children.json"


def _clean_up_after_a_dead_run(settings: Settings, pid_file: Path, port: int, say: stack.Progress) -> None:
    """Stop what a dead earlier run on this port left running, delete its topics and bucket, and make sure
    the port is free."""
    left = reap(pid_file)
    if left.get("tag"):
        tag = str(left["tag"])
        stopped = f"stopped its leftover processes {left['reaped']}; " if left.get("reaped") else ""
        say(f"an earlier demo ({tag}, pid {left.get('parent')}) ended without its shutdown: {stopped}"
            f"deleting its topics and bucket")
        _drop_namespace(settings.with_(topic_prefix=f"{tag}.", influx_bucket=tag))
    deadline = time.monotonic() + 10.0
    while not _port_free(port):
        if time.monotonic() > deadline:
            raise ServiceError(f"port {port} is in use by another program; free it or give the demo --port")
        time.sleep(0.5)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _demo_users(database_url: str, tag: str) -> dict[str, str]:
    """This run's viewer and dispatcher (users ``<tag>-viewer``, ``<tag>-dispatcher`` in its case store) and
    their tokens: no token ships with GridSentinel, so each run makes its own (docs/operations.md)."""
    import asyncio

    from .api.users import UserStore

    async def make() -> dict[str, str]:
        async with UserStore.open(database_url) as store:
            return {role: (await store.create_user(f"{tag}-{role}", role, actor="gridsentinel demo",
                                                   expires_in_s=DEMO_TOKEN_S, description="demo run")).secret
                    for role in ("viewer", "dispatcher")}

    return asyncio.run(make())


def _namespace_env(space: Settings, tag: str, run_dir: Path) -> dict[str, str]:
    """The children's environment for this run's private slice of the stack."""
    env = {"GS_TOPIC_PREFIX": space.topic_prefix, "GS_INFLUX_BUCKET": space.influx_bucket,
           "GS_MQTT_SHARE_GROUP": tag,  # other gateways on the broker do not take a share of the district
           "GS_MQTT_SESSION_EXPIRY": "120"}  # the broker forgets the gateway's session soon after Ctrl-C
    if "database_url" not in space.model_fields_set:  # no GS_DATABASE_URL given: the run's own store
        env["GS_DATABASE_URL"] = f"sqlite:///{run_dir / 'cases.db'}"
    return env


def _create_bucket(space: Settings) -> None:
    from influxdb_client import InfluxDBClient

    with InfluxDBClient(url=space.influx_url, token=space.influx_token, org=space.influx_org) as c:
        if c.buckets_api().find_bucket_by_name(space.influx_bucket) is None:
            c.buckets_api().create_bucket(bucket_name=space.influx_bucket, org=space.influx_org)


def _drop_namespace(space: Settings) -> None:
    """Delete the run's bucket and Kafka topics (its prefix is unique to the run); best effort."""
    from influxdb_client import InfluxDBClient

    from gridsentinel.core.topics import delete_topics

    try:
        with InfluxDBClient(url=space.influx_url, token=space.influx_token, org=space.influx_org) as c:
            bucket = c.buckets_api().find_bucket_by_name(space.influx_bucket)
            if bucket is not None:
                c.buckets_api().delete_bucket(bucket)
        app_id = f"gridsentinel-{space.influx_bucket}"  # the worker's internal topics start with its app id
        delete_topics(space.kafka_bootstrap, space.topic_prefix, f"{app_id}-")
    except Exception as exc:  # the run is over either way; say what is left behind
        print(f"could not delete the run's topics/bucket ({type(exc).__name__}: {exc})", flush=True)


def _demo_webhook_secrets(settings: Settings) -> dict[str, str]:
    """Development-only HMAC secrets for the receivers whose secret variable is not set, so the alert
    delivery of the demo's worker starts (deliveries to receivers that are not running end in the dead
    letter after their retries, as they would in production)."""
    import os

    from .alerts.delivery.config import load_receivers

    names = {r.secret_env for r in load_receivers(settings.config_dir / "receivers.yaml").receivers}
    return {name: f"gs-demo-only-secret-{name.lower()}" for name in sorted(n for n in names if n)
            if len(os.environ.get(name, "")) < 16}


LIVE_CHUNK_S = 600.0  # after the window: the normal signals played in real time, this much at a time


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
    parser.add_argument("--id-prefix", default="",
                        help="simulate only the registry's devices whose id starts with this (tests run the "
                             "district under unique ids in a config copy)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    return run_demo(settings, port=args.port, speed=args.speed, seed=args.seed, id_prefix=args.id_prefix)
