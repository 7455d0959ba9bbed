"""The `gridsentinel` command: services, the local stack, tools and benchmarks."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .entry import configure_logging, run_command
from .settings import Settings

if TYPE_CHECKING:
    from .stack import ServiceState

# Benchmarks live in modules exposing add_arguments(parser) and run(args) -> int.
BENCHMARKS: dict[str, tuple[str, str]] = {
    "ingest": ("gridsentinel.bench.ingest", "readings/s MQTT -> Kafka -> InfluxDB, latency, CPU and memory"),
    "nab": ("gridsentinel.bench.nab", "NAB out-of-fold and in-sample scores and rows/s of the sensor detectors"),
    "vision": ("gridsentinel.bench.vision", "camera detectors: detection rate, delay, false alarms, fps"),
    "cases": ("gridsentinel.bench.cases",
              "detections/s through dedup + case store (SQLite, PostgreSQL, Faust stage), detection -> webhook p99"),
    "detect": ("gridsentinel.bench.detect",
               "readings/s through the detection stage per worker, vs the readings-only Faust limit"),
    "forecast": ("gridsentinel.bench.forecast",
                 "hotspot forecast per cell x family: rolling-origin hit rate and deviance vs naive baselines"),
    "performance": ("gridsentinel.bench.performance",
                    "department performance on Boston 311 (resolve times, overdue share) vs Boston's own on-time flag"),
    "patrol": ("gridsentinel.bench.patrol",
               "patrol plan: share of the next day's problems in the planned cells vs last week's top cells"),
    "reporting": ("gridsentinel.bench.reporting",
                  "selective-reporting index: false flags and power simulated; flags per week on Boston 311"),
    "intake": ("gridsentinel.bench.intake",
               "citizen intake on Boston 311: duplicates vs the city's markers, verification share, inspector load"),
}


def _cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from . import stack

    states = stack.up(settings, stack.progress_printer(), only=args.only)
    _print_states(states)
    ok = all(s.health.ok for s in states)
    if ok and not args.only:
        _first_admin(settings)
    return 0 if ok else 1


def _first_admin(settings: Settings) -> None:
    """The first API admin, made once (its token printed once); later runs print nothing secret."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from .api.user_commands import show_secret
    from .api.users import ensure_first_admin
    from .errors import ServiceError

    try:
        issued = ensure_first_admin(settings.database_url)
    except (SQLAlchemyError, OSError) as exc:
        where = make_url(settings.database_url).render_as_string(hide_password=True)
        raise ServiceError(f"the stack is up, but the first API admin could not be made in {where} ({exc}); "
                           "check GS_DATABASE_URL, then run `gridsentinel users create admin --role admin`") from None
    if issued is None:
        print("API users: an admin exists (gridsentinel users list; docs/operations.md, 'Users and tokens')")
        return
    print("\nFirst API admin created:")
    show_secret(issued)
    print("  More users and tokens: gridsentinel users create NAME --role ROLE (docs/operations.md).\n")


def _cmd_down(args: argparse.Namespace, settings: Settings) -> int:
    from . import stack

    stack.down(settings, stack.progress_printer(), only=args.only)
    return 0


def _cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from . import stack

    states = stack.status(settings, only=args.only)
    if args.json:
        print(json.dumps([{"service": s.name, "running": s.running, "healthy": s.health.ok,
                           "detail": s.health.detail, "version": s.version, "address": s.address,
                           "pid": s.pid} for s in states], indent=2))
    else:
        _print_states(states)
    return 0 if all(s.health.ok for s in states) else 1


def _print_states(states: list[ServiceState]) -> None:
    print(f"{'service':<10} {'state':<9} {'version':<10} {'address':<28} detail")
    for s in states:
        state = "healthy" if s.health.ok else ("unhealthy" if s.running else "stopped")
        print(f"{s.name:<10} {state:<9} {s.version:<10} {s.address:<28} {s.health.detail}")


def _cmd_gateway(args: argparse.Namespace, settings: Settings) -> int:
    from .gateway.service import run_gateway

    return run_gateway(settings, client_id=args.client_id, stats_file=args.stats_file, metrics_port=args.metrics_port)


# One line per worker stage for `gridsentinel worker --help` (tests check it names every stage in worker/stages.py).
WORKER_STAGES: dict[str, str] = {
    "ingest": "gs.readings -> InfluxDB (the default: the only stage run without --stages)",
    "detect": "sensor detectors: gs.readings -> gs.detections",
    "frames": "camera detectors: gs.frames -> gs.detections, with evidence",
    "cases": "gs.detections -> dedup -> case store -> gs.case-events -> alerts (webhook, MQTT; "
             "GS_CASES_ALERTS=separate: left to `alerts`)",
    "alerts": "gs.case-events -> alerts (webhook, MQTT) alone, in consumer group <app-id>-alerts when "
              "`cases` is not in the same worker",
    "live-config": "switch the detect stage to new detector config versions without a restart",
    "shadow": "a candidate detector config beside the live one, cases in a separate store, never dispatched",
}


def warn_if_calendar_uncovered(settings: Settings, now: float | None = None) -> str | None:
    """Log (and return) the start-up warning when this year's (or, in December, next year's) public
    holidays are unknown: due times would then treat them as working days."""
    from .cases.calendar import WorkCalendar, coverage_warning
    from .core.config import load_yaml

    path = settings.config_dir / "calendar.yaml"
    cal = load_yaml(path, WorkCalendar) if path.exists() else WorkCalendar()
    warning = coverage_warning(time.time() if now is None else now, cal)
    if warning:
        logging.getLogger("gridsentinel.calendar").warning("%s", warning)
    return warning


def _cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from gridsentinel.worker.command import run_worker

    if "cases" in args.stages:
        warn_if_calendar_uncovered(settings)
    return run_worker(settings, args)


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from .demo import run

    warn_if_calendar_uncovered(settings)
    return int(run(args, settings))


def _cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from .simulator import run

    return int(run(args, settings))


def _cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    from .engineering.commands import cmd_validate

    return cmd_validate(args, settings)  # per kind (--kind, or the file name); detectors by default


def _cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    from .api.app import run_api

    warn_if_calendar_uncovered(settings)
    return run_api(settings, args.host, args.port)


def _cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    module = importlib.import_module(BENCHMARKS[args.bench][0])
    return int(module.run(args, settings))


def _cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from .analytics.report import run

    return run(args, settings)


REPORT_HELP = "coordination reports (the weekly report as HTML and PDF)"
PATROL_HELP = "inspectors' patrol plan (cells in order, from the hotspot forecast)"
FORECAST_HELP = "the hotspot forecast's stored models: train one now, list them"


def _register_report(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("report", help=REPORT_HELP)
    rsub = p.add_subparsers(dest="report", metavar="REPORT", required=True)
    rp = rsub.add_parser("weekly", help="the week's figures, hotspots, forecast, stuck cases, escalations, "
                                        "selective-reporting flags and department/center performance",
                         description="Write the weekly coordination report (HTML, and PDF with --pdf) from the "
                                     "case store (GS_DATABASE_URL) or, with --civic, from the Boston 311 extract.")
    from .analytics.report import add_arguments as report_arguments

    report_arguments(rp)
    rp.set_defaults(func=_cmd_report)


def _command_named(argv: list[str] | None) -> str | None:
    """The command ``argv`` runs (its first word that is not an option).

    >>> _command_named(["-v", "report", "weekly"]), _command_named([])
    ('report', None)
    """
    words = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    return words[0] if words else None


def _bench_named(argv: list[str] | None) -> str | None:
    """The benchmark ``argv`` runs (``bench NAME ...``), if any: only its module is imported, since importing
    every benchmark (numpy, OpenCV, scikit-learn) would add seconds to every other command's start.

    >>> _bench_named(["-v", "bench", "nab", "--json"]), _bench_named(["devices", "list"]), _bench_named(["bench"])
    ('nab', None, None)
    """
    words = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    return words[1] if len(words) >= 2 and words[0] == "bench" else None


def build_parser(argv: list[str] | None = None, *, all_benchmarks: bool = False) -> argparse.ArgumentParser:
    """The CLI's parser. A benchmark's options are added only for the one ``argv`` names (or every one with
    ``all_benchmarks``); the others are listed with their summaries."""
    parser = argparse.ArgumentParser(
        prog="gridsentinel",
        description="GridSentinel turns a city's sensors and street cameras into grid-management cases.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    parser.add_argument("--log-format", choices=("text", "json"), default=None,
                        help="text (default) or json: one JSON object a line (default: GS_LOG_FORMAT)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    services = ("mosquitto", "kafka", "influxdb", "postgresql")
    p = sub.add_parser("up", help="install what is missing and start the local stack (idempotent)",
                       description="Install what is missing (Debian packages, Kafka jars, an InfluxDB build) "
                                   "and start Mosquitto, Kafka and InfluxDB on 127.0.0.1. Running healthy "
                                   "services are left alone; dead ones are restarted.")
    p.add_argument("--only", nargs="+", choices=services, help="act on these services only")
    p.set_defaults(func=_cmd_up)
    p = sub.add_parser("down", help="stop the services `up` started")
    p.add_argument("--only", nargs="+", choices=services, help="act on these services only")
    p.set_defaults(func=_cmd_down)
    p = sub.add_parser("status", help="each service's state, version, address and health")
    p.add_argument("--only", nargs="+", choices=services, help="show these services only")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("gateway", help="run the MQTT gateway (MQTT -> Kafka) in the foreground")
    p.add_argument("--client-id", default=None,
                   help="MQTT client id (default gs-gateway-<host>); give each gateway process its own, and "
                        "keep it across restarts so the broker hands back what it queued meanwhile")
    p.add_argument("--stats-file", default=None,
                   help="write the counters (dead letters per reason included) to this JSON file each second")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="serve Prometheus /metrics on this port (default GS_GATEWAY_METRICS_PORT or 19101; 0: off); "
                        "give each gateway on a machine its own")
    p.set_defaults(func=_cmd_gateway)

    p = sub.add_parser("worker", help="run the Faust stream worker (its stages) in the foreground",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Run the Faust stream worker in the foreground. Without --stages it runs "
                                   "only `ingest`;\nname the stages to run, e.g. `--stages ingest detect frames "
                                   "cases`.",
                       epilog="stages:\n" + "\n".join(f"  {name:<12} {line}" for name, line in WORKER_STAGES.items()))
    p.add_argument("--app-id", default="gridsentinel",
                   help="Faust app id = Kafka consumer group (default gridsentinel)")
    p.add_argument("--bucket", default=None, help="InfluxDB bucket (default: GS_INFLUX_BUCKET or 'readings')")
    p.add_argument("--loglevel", default="warning", help="log level (default warning)")
    p.add_argument("--no-supervise", action="store_true",
                   help="run the Faust app in this process (default: in a child restarted if it stops)")
    p.add_argument("--stages", nargs="+", default=["ingest"],
                   help="stages to run in this worker (default: ingest only); one or more of: "
                        + ", ".join(WORKER_STAGES) + " (listed below)")
    p.add_argument("--stats-file", default=None,
                   help="write counters and the publish->InfluxDB latency histogram to this JSON file each second")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="serve Prometheus /metrics of the stages on this port and the supervisor's (child restarts) "
                        "on port + 1 (default GS_WORKER_METRICS_PORT or 19102; 0: off); give each worker its own")
    p.set_defaults(func=_cmd_worker)

    p = sub.add_parser("api", help="run the HTTP API (cases, stream, devices, grid, Open311) in the foreground")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.set_defaults(func=_cmd_api)

    from .demo import add_arguments as demo_arguments
    from .simulator import add_arguments as simulate_arguments

    p = sub.add_parser("demo", help="the whole pipeline with a simulated district and the dashboard; Ctrl-C stops",
                       description="Bring up the stack, the gateway, the worker (all stages), the API with the "
                                   "dispatch dashboard and the simulator; print where to look; Ctrl-C stops all.")
    demo_arguments(p)
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("simulate", help="a synthetic district publishing over MQTT, with scripted incidents "
                                        "and ground truth")
    simulate_arguments(p)
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("config", help="validate, apply and inspect configuration (detectors, cameras, "
                                      "categories, routing, receivers, calendar)")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    cp = csub.add_parser("validate", help="check a config file; errors name file, key path, value and "
                                          "what was expected; non-zero exit when invalid")
    cp.add_argument("path", nargs="?", type=Path, help="file to check (default config/detectors.yaml)")
    from .liveconfig.kinds import KINDS

    cp.add_argument("--kind", choices=list(KINDS), default=None, metavar="KIND",
                    help=f"config kind: {', '.join(KINDS)} (default from the file name, else detectors)")
    cp.set_defaults(func=_cmd_config)
    from .engineering.commands import add_backtest_command, add_config_actions

    add_config_actions(csub, KINDS)  # apply, history, diff, rollback (--kind), shadow start|stop|report
    add_backtest_command(sub)
    from .devices.commands import register_cli as register_devices

    register_devices(sub)  # devices list|show|create|update|move|retire|rotate|revoke|import|export|seed|sync
    from .devices.subscriber_commands import register_cli as register_centers

    register_centers(sub)  # centers subscriber create|rotate|revoke|list|sync
    from .api.user_commands import register_cli as register_users

    register_users(sub)  # users create|list|token|revoke
    from .cases.export_command import register_cli as register_export

    register_export(sub)  # export cases
    from .cases.photos_command import register_cli as register_photos

    register_photos(sub)  # photos sweep

    # Commands whose modules pull in scipy, scikit-learn or numpy are registered in full only when the command
    # line names them; otherwise they are listed with their one-line help (every other command starts fast).
    command = _command_named(argv)
    if command == "report":
        _register_report(sub)
    else:
        sub.add_parser("report", help=REPORT_HELP)
    if command == "patrol":
        from .analytics.patrol_plan import register_cli as register_patrol

        register_patrol(sub)  # patrol plan
    else:
        sub.add_parser("patrol", help=PATROL_HELP)
    if command == "forecast":
        from .analytics.forecast_command import register_cli as register_forecast

        register_forecast(sub)  # forecast train / models
    else:
        sub.add_parser("forecast", help=FORECAST_HELP)

    p = sub.add_parser("bench", help="measure throughput, latency and detector quality")
    bsub = p.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    named = _bench_named(argv)
    for name, (module_name, summary) in BENCHMARKS.items():
        bp = bsub.add_parser(name, help=summary, description=summary)
        if not all_benchmarks and name != named:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            bsub._name_parser_map.pop(name, None)  # benchmark not shipped in this build
            continue
        module.add_arguments(bp)
        if not any(a.dest == "json" for a in bp._actions):
            bp.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    settings = Settings()
    if args.log_format:  # the worker's child and the demo's services log the same way
        os.environ["GS_LOG_FORMAT"] = args.log_format
        settings = settings.with_(log_format=args.log_format)
    configure_logging(args.verbose, settings.log_format)
    func: Callable[[argparse.Namespace, Settings], int] = args.func
    return run_command(lambda: func(args, settings))

if __name__ == "__main__":
    sys.exit(main())
