"""``gridsentinel photos sweep``: delete citizens' photos older than ``photo_retention_days`` (config/quality.yaml)
from ``<run dir>/citizen-photos`` (:func:`gridsentinel.cases.citizen_photos.sweep`). Idempotent; run it from cron
or a systemd timer, e.g. hourly."""

from __future__ import annotations

import argparse
import json

from gridsentinel.core.config import load_yaml
from gridsentinel.errors import GridSentinelError
from gridsentinel.settings import Settings

PHOTO_DIR = "citizen-photos"  # the intake's folder under the run directory (api/citizen_intake.PHOTO_DIR)


def register_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("photos", help="citizens' photos: the retention sweep")
    psub = p.add_subparsers(dest="photos", metavar="ACTION", required=True)
    sp = psub.add_parser(
        "sweep", help="delete citizens' photos (and their blurred copies) older than the retention period",
        description="Delete the photos citizens sent with their reports, and their blurred copies, once older "
                    "than photo_retention_days of config/quality.yaml (default 30), from <run dir>/citizen-photos "
                    "(GS_RUN_DIR). The reports and their reasons stay. Safe to run at any time, e.g. hourly.")
    sp.add_argument("--days", type=float, default=None,
                    help="retention in days instead of config/quality.yaml's photo_retention_days")
    sp.add_argument("--dry-run", action="store_true", help="count what would go; delete nothing")
    sp.add_argument("--json", action="store_true", help="print one JSON object")
    sp.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from gridsentinel.cases.citizen_photos import sweep
    from gridsentinel.cases.quality import QualityConfig

    if args.days is not None and not 0 < args.days <= 3650:
        raise GridSentinelError(f"--days {args.days}: give a number of days above 0 and at most 3650")
    path = settings.config_dir / "quality.yaml"
    days = args.days if args.days is not None else (
        load_yaml(path, QualityConfig) if path.exists() else QualityConfig()).photo_retention_days
    folder = settings.run_dir / PHOTO_DIR
    done = sweep(folder, days, dry_run=args.dry_run)
    if args.json:
        print(json.dumps({"folder": str(folder), "retention_days": days, "dry_run": args.dry_run,
                          "removed": done.removed, "kept": done.kept, "orphans": done.orphans,
                          "freed_bytes": done.freed_bytes}))
    else:
        verb = "would delete" if args.dry_run else "deleted"
        print(f"{folder}: {verb} {done.removed} photos older than {days:g} days and {done.orphans} leftovers "
              f"({done.freed_bytes / 1e6:.1f} MB); {done.kept} kept")
    return 0
