"""CLI: ``gridsentinel config apply|history|diff|rollback|shadow`` and ``gridsentinel backtest``.

Wire it into ``gridsentinel/cli.py`` with two calls (see docs/engineering.md)::

    from .engineering.commands import add_config_actions, add_backtest_command
    add_config_actions(csub)      # csub: the `config` command's subparsers
    add_backtest_command(sub)     # sub: the top-level subparsers

Every handler has the CLI's signature ``func(args, settings) -> exit code``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from gridsentinel.engineering import configs as ops
from gridsentinel.engineering.configs import DETECTORS, KindSpec
from gridsentinel.engineering.versions import VersionStore
from gridsentinel.errors import ConfigError
from gridsentinel.settings import Settings

# The config kinds `--kind` takes; add_config_actions sets them (liveconfig/kinds.py's KINDS from the CLI).
KINDS: dict[str, KindSpec] = {DETECTORS.name: DETECTORS}


def resolve_kind(name: str | None, path: Path | None = None) -> KindSpec:
    """``--kind NAME``, else the kind whose file name ``path`` has, else detectors."""
    if name is not None:
        if name not in KINDS:
            raise ConfigError(f"unknown config kind {name!r}; use one of {', '.join(KINDS)}")
        return KINDS[name]
    if path is not None:
        for kind in KINDS.values():
            if kind.file_name == path.name:
                return kind
    return DETECTORS


def _versions(settings: Settings, kind: KindSpec = DETECTORS) -> VersionStore:
    return VersionStore.default(settings.run_dir, kind.name)


def _prefix(kind: KindSpec) -> str:
    return "" if kind is DETECTORS else f"{kind.name} "


def cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    """``config validate [PATH] [--kind KIND]``: every problem on its own line (exit 1), else "valid"."""
    kind = resolve_kind(getattr(args, "kind", None), args.path)
    path = args.path or settings.config_dir / kind.file_name
    if kind is DETECTORS:
        from gridsentinel.detectors.config import validate_file

        problems = validate_file(path)
    else:
        with _versions(settings, kind) as store:
            problems = ops.validate_kind(settings, store, ops.read_text(path), str(path), kind, KINDS)[1]
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        return 1
    print(f"{path}: valid")
    return 0


def cmd_apply(args: argparse.Namespace, settings: Settings) -> int:
    kind = resolve_kind(args.kind, args.path)
    with _versions(settings, kind) as store:
        author = args.author or ops.default_author()
        version, created = ops.apply_file(settings, store, args.path, author=author, kind=kind, kinds=KINDS)
    what = "stored and published" if created else "unchanged (already the latest version); re-published"
    print(f"{_prefix(kind)}config v{version.number} ({version.label}) by {version.author}: {what}")
    if created and version.diff:
        print(version.diff)
    return 0


def cmd_history(args: argparse.Namespace, settings: Settings) -> int:
    kind = resolve_kind(args.kind)
    with _versions(settings, kind) as store:
        versions = store.history(limit=args.limit)
    if args.json:
        print(json.dumps([v.to_dict(with_yaml=False) for v in versions], indent=1))
        return 0
    if not versions:
        print(f"no {_prefix(kind)}config version applied yet (workers run config/{kind.file_name})")
    for v in versions:
        when = datetime.fromtimestamp(v.created_at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        changed = sum(1 for line in v.diff.splitlines()
                      if line[:1] in "+-" and line[:3] not in ("+++", "---"))
        note = f"  ({v.note})" if v.note else ""
        print(f"v{v.number:<4} {when}  {v.author:<20} version {v.config_version:<12} "
              f"{changed} changed line(s){note}")
    return 0


def cmd_diff(args: argparse.Namespace, settings: Settings) -> int:
    with _versions(settings, resolve_kind(args.kind)) as store:
        text = store.diff(args.a, args.b)
    print(text or f"v{args.a} and v{args.b} are identical")
    return 0


def cmd_rollback(args: argparse.Namespace, settings: Settings) -> int:
    kind = resolve_kind(args.kind)
    with _versions(settings, kind) as store:
        version, created = ops.rollback(settings, store, args.version,
                                        author=args.author or ops.default_author(), kind=kind, kinds=KINDS)
    print(f"{_prefix(kind)}rolled back to v{args.version}: now v{version.number} ({version.label})"
          + ("" if created else " (it was already live; re-published)"))
    return 0


def cmd_shadow(args: argparse.Namespace, settings: Settings) -> int:
    from gridsentinel.engineering import shadow

    if args.shadow_action == "start":
        info = shadow.start(settings, args.path, author=args.author or ops.default_author())
        print(f"shadow config {info['label']} started; workers with the shadow stage now run it beside the "
              f"live config (cases go to {shadow.shadow_url(settings)})")
    elif args.shadow_action == "stop":
        shadow.stop(settings, author=args.author or ops.default_author())
        print("shadow run stopped")
    else:
        report = shadow.report_sync(settings)
        print(json.dumps(report, indent=1))
    return 0


def cmd_backtest(args: argparse.Namespace, settings: Settings) -> int:
    from gridsentinel.engineering.run import BacktestRequest, parse_when, run_sync

    out = args.out or Path(f"backtest-{int(time.time())}")
    csv_path = Path(args.source[1]) if len(args.source) > 1 else None
    if args.source[0] not in ("influx", "csv"):
        raise ConfigError(f"--source {args.source[0]!r}: expected influx or csv PATH")
    req = BacktestRequest(config_path=args.config, since=parse_when(args.since), until=parse_when(args.until),
                          source=args.source[0], csv_path=csv_path,
                          against_live=args.against == "live", out_dir=out, bucket=args.bucket,
                          prefix_digits=args.prefix_digits, tolerance_s=args.tolerance,
                          check_every_s=args.check_every, csv_kind=args.kind or "", csv_grid=args.grid or "")
    summary, _ = run_sync(req, settings)  # it writes the report to req.out_dir, which is ``out``
    if args.json:
        print(json.dumps(summary))
    else:
        for name, run in summary["runs"].items():
            agree = run.get("agreement")
            extra = (f", precision {agree['precision']}, recall {agree['recall']}" if agree else "")
            print(f"{name} ({run['label']}): {run['detections']} detections, {run['cases']} cases "
                  f"(open {run['cases_would_open']}, merge {run['cases_would_merge']}, reopen "
                  f"{run['cases_would_reopen']}){extra}")
        print(f"report: {out / 'report.html'}  summary: {out / 'summary.json'}", file=sys.stderr)
    return 0


def _author(p: argparse.ArgumentParser) -> None:
    p.add_argument("--author", default=None, help="who applies it (default user:<login>)")


def _kind(p: argparse.ArgumentParser, infer: bool = False) -> None:
    p.add_argument("--kind", choices=list(KINDS), default=None, metavar="KIND",
                   help=f"config kind: {', '.join(KINDS)} (default "
                        + ("from the file name, else detectors)" if infer else "detectors)"))


def add_config_actions(csub: argparse._SubParsersAction[argparse.ArgumentParser],
                       kinds: dict[str, KindSpec] | None = None) -> None:
    """Add apply/history/diff/rollback/shadow to the ``config`` command's subparsers; ``kinds``: the
    config kinds ``--kind`` takes (default detectors only)."""
    if kinds:
        KINDS.clear()
        KINDS.update(kinds)
    affects = "\n".join(f"  {k.name:<11} {k.file_name:<16} {k.affects}" for k in KINDS.values())
    p = csub.add_parser("apply", help="validate, store a new version and publish it to running workers",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Validate a config file, store it as a new version of its kind (author, "
                                    "time, diff) and publish it on gs.config; workers with the live-config "
                                    "stage switch without a restart. What each kind's apply changes:\n"
                                    + affects)
    p.add_argument("path", nargs="?", type=Path,
                   help="file to apply (default config/<the kind's file>, e.g. config/detectors.yaml)")
    _kind(p, infer=True)
    _author(p)
    p.set_defaults(func=cmd_apply)
    p = csub.add_parser("history", help="applied config versions, newest first")
    p.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    p.add_argument("--json", action="store_true", help="print JSON")
    _kind(p)
    p.set_defaults(func=cmd_history)
    p = csub.add_parser("diff", help="unified diff between two stored versions")
    p.add_argument("a", type=int, help="from version number")
    p.add_argument("b", type=int, help="to version number")
    _kind(p)
    p.set_defaults(func=cmd_diff)
    p = csub.add_parser("rollback", help="apply an old version again (stored as a new version)")
    p.add_argument("version", type=int, help="version number to go back to")
    _kind(p)
    _author(p)
    p.set_defaults(func=cmd_rollback)
    p = csub.add_parser("shadow", help="run a candidate config beside the live one (never dispatched)")
    ssub = p.add_subparsers(dest="shadow_action", metavar="ACTION", required=True)
    sp = ssub.add_parser("start", help="publish a candidate config for the shadow stage")
    sp.add_argument("path", type=Path, help="candidate detectors.yaml")
    _author(sp)
    sp.set_defaults(func=cmd_shadow)
    sp = ssub.add_parser("stop", help="end the shadow run")
    _author(sp)
    sp.set_defaults(func=cmd_shadow)
    sp = ssub.add_parser("report", help="compare shadow cases with live cases over the shadow period (JSON)")
    sp.set_defaults(func=cmd_shadow)


def add_backtest_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``backtest`` to the top-level subparsers."""
    p = sub.add_parser("backtest", help="replay history through a detector config (no side effects)",
                       description="Replay readings through the live detection engine and dedup rules "
                                   "in memory; write summary.json and report.html.")
    p.add_argument("--config", required=True, type=Path,
                   help="folder with detectors.yaml (categories/routing/grid/devices too, else config/), "
                        "or a detectors.yaml")
    p.add_argument("--since", required=True, help="start: ISO 8601, Unix s, or --since=-6h / --since=-7d")
    p.add_argument("--until", default="now", help="end (exclusive; default now)")
    p.add_argument("--source", nargs="+", default=["influx"], metavar="influx|csv PATH",
                   help="influx (default) or csv PATH (a file or folder; NAB folders work)")
    p.add_argument("--against", choices=["live"], default=None, help="also run the live config and compare")
    p.add_argument("--out", type=Path, default=None, help="report folder (default ./backtest-<time>)")
    p.add_argument("--bucket", default=None, help="InfluxDB bucket (default GS_INFLUX_BUCKET)")
    p.add_argument("--prefix-digits", type=int, default=9, choices=[6, 9, 12, 15],
                   help="group cases by this grid prefix (6 district, 9 street, 12 community, 15 cell)")
    p.add_argument("--tolerance", type=float, default=3600.0,
                   help="seconds of slack when matching replayed cases to real ones (default 3600)")
    p.add_argument("--check-every", type=float, default=60.0,
                   help="event-time seconds between timer checks (dropout, held tilt; default 60)")
    p.add_argument("--kind", default=None, help="CSV: device kind for series the registry does not know")
    p.add_argument("--grid", default=None, help="CSV: grid code for series the registry does not know")
    p.add_argument("--json", action="store_true", help="print the JSON summary on stdout")
    p.set_defaults(func=cmd_backtest)


def register_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                 csub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_config_actions(csub)
    add_backtest_command(sub)
