"""Stage ``live-config``: running workers switch detector config without a restart.

Follows ``gs.config`` (key ``detectors``; see engineering/publish.py) and hands each new version to the
detection stage's engine, given to the stage when the worker is wired (worker/stages.py), with
``engine.reconfigure(config, label)``. The engine
keeps the state of every detector whose resolved settings did not change. Run it together with the
detection stage: ``gridsentinel worker --stages ingest detection live-config``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any, Protocol

import faust
import yaml

from gridsentinel.detectors.config import DetectorConfig, validate_data
from gridsentinel.engineering.follow import follow_config
from gridsentinel.engineering.publish import LIVE_KEY, ensure_config_topic

if TYPE_CHECKING:
    from gridsentinel.streams.context import StageContext

log = logging.getLogger(__name__)


def parse_message(value: dict[str, Any]) -> tuple[DetectorConfig, str]:
    """The config and its label from a ``gs.config`` value; ``ValueError`` naming every problem."""
    text = value.get("yaml")
    if not isinstance(text, str):
        raise ValueError("gs.config value has no yaml text")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"gs.config yaml does not parse: {exc}") from None
    config, problems = validate_data(data, f"gs.config version {value.get('version')}")
    if config is None:
        raise ValueError("\n".join(problems))
    label = str(value.get("label") or value.get("version") or config.version)
    return config, label


class Reconfigurable(Protocol):
    """What live config drives: the detection stage's ``DetectionEngine``."""

    def reconfigure(self, config: DetectorConfig, version: str) -> set[str]: ...


class LiveConfig:
    """Applies config messages to the detection engine it is given (``None``: this worker runs no
    detection stage, and a config that arrives is only logged)."""

    def __init__(self, engine: Reconfigurable | None) -> None:
        self.engine = engine
        self.applied: str | None = None
        self.changed = 0
        self.rejected = 0

    def handle(self, key: str, value: dict[str, Any]) -> None:
        if key != LIVE_KEY:
            return
        try:
            config, label = parse_message(value)
        except ValueError as exc:
            self.rejected += 1
            log.error("ignoring an invalid config on gs.config: %s", exc)
            return
        if label == self.applied:
            return  # a replay of what runs already
        if self.engine is None:
            log.warning("config %s arrived but no detection engine runs in this worker", label)
            return
        changed = self.engine.reconfigure(config, label)
        self.applied = label
        self.changed = len(changed)
        log.warning("detector config %s (by %s) now live; %d detector(s) changed", label,
                    value.get("author", "?"), len(changed))


class LiveConfigStage:
    """``--stages live-config``: follows ``gs.config`` in a task and reconfigures ``engine``."""

    def __init__(self, engine: Reconfigurable | None) -> None:
        self.live = LiveConfig(engine)

    def register(self, app: faust.App, ctx: StageContext) -> None:
        ensure_config_topic(ctx.settings)
        live = self.live
        ctx.stats["config_label"] = lambda: live.applied
        ctx.stats["config_changed_detectors"] = lambda: live.changed
        ctx.stats["config_rejected"] = lambda: live.rejected

        @app.task
        async def follow_live_config() -> None:
            with contextlib.suppress(asyncio.CancelledError):
                await follow_config(ctx.settings, live.handle)
