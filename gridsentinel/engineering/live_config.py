"""Stage ``live-config``: running workers switch config without a restart.

Follows ``gs.config`` (see engineering/publish.py). Key ``detectors``: each new version goes to the
detection stage's engine, given to the stage when the worker is wired (worker/stages.py), with
``engine.reconfigure(config, label)``; the engine keeps the state of every detector whose resolved
settings did not change. The other keys (``cameras``, ``categories``, ``routing``, ``receivers``,
``calendar``) go to the :class:`KindApplier` the wiring gives for them (gridsentinel/liveconfig): the text
is validated and the new object built completely before it is swapped in; a version that fails is
rejected (logged with its reasons and counted in ``config_rejected``) and the old one stays.
Run it with the stages it drives: ``gridsentinel worker --stages detect frames cases live-config``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import yaml

from gridsentinel.detectors.config import DetectorConfig, validate_data
from gridsentinel.engineering.configs import KindSpec
from gridsentinel.engineering.follow import follow_config
from gridsentinel.engineering.publish import LIVE_KEY, ensure_config_topic
from gridsentinel.errors import ConfigError

if TYPE_CHECKING:
    import faust

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


@dataclass(frozen=True, slots=True)
class KindApplier:
    """How one config kind goes live in this process: ``kind.validate`` checks the text (cross-file
    checks skipped: the applier builds against what runs), then ``apply(obj, label)`` builds the new
    objects completely and swaps them in, returning a one-line summary; it raises ``ConfigError`` /
    ``ValueError`` to reject the version, with nothing swapped."""

    kind: KindSpec
    apply: Callable[[Any, str], str]


class LiveConfig:
    """Applies config messages: detector configs to the detection engine it is given (``None``: this
    worker runs no detection stage, and a detector config that arrives is only logged), the other kinds
    to their ``appliers``."""

    def __init__(self, engine: Reconfigurable | None, appliers: Mapping[str, KindApplier] | None = None) -> None:
        self.engine = engine
        self.appliers = dict(appliers or {})
        self.applied: str | None = None
        self.changed = 0
        self.rejected = 0
        self.applied_kinds: dict[str, str] = {}  # kind -> label now live (kinds other than detectors)
        self.rejected_kinds: dict[str, int] = {}

    def _reject(self, kind: str, label: str, reasons: str) -> None:
        self.rejected += 1
        self.rejected_kinds[kind] = self.rejected_kinds.get(kind, 0) + 1
        log.error("rejected %s config %s from gs.config; the running one stays. Reasons:\n%s", kind, label,
                  reasons)

    def handle_kind(self, key: str, value: dict[str, Any]) -> None:
        applier = self.appliers[key]
        label = str(value.get("label") or value.get("version") or "?")
        if self.applied_kinds.get(key) == label:
            return  # a replay of what runs already
        text = value.get("yaml")
        if not isinstance(text, str):
            self._reject(key, label, "gs.config value has no yaml text")
            return
        obj, problems = applier.kind.validate(text, f"gs.config {key} {label}", lambda _name: "")
        if obj is None:
            self._reject(key, label, "\n".join(problems))
            return
        try:
            summary = applier.apply(obj, label)
        except (ConfigError, ValueError) as exc:
            self._reject(key, label, str(exc))
            return
        self.applied_kinds[key] = label
        log.warning("%s config %s (by %s) now live: %s", key, label, value.get("author", "?"), summary)

    def handle(self, key: str, value: dict[str, Any]) -> None:
        if key in self.appliers:
            self.handle_kind(key, value)
            return
        if key != LIVE_KEY:
            return
        try:
            config, label = parse_message(value)
        except ValueError as exc:
            self._reject(LIVE_KEY, str(value.get("label") or value.get("version") or "?"), str(exc))
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

    def __init__(self, engine: Reconfigurable | None, appliers: Mapping[str, KindApplier] | None = None) -> None:
        self.live = LiveConfig(engine, appliers)

    def register(self, app: faust.App, ctx: StageContext) -> None:
        ensure_config_topic(ctx.settings)
        live = self.live
        ctx.stats["config_label"] = lambda: live.applied
        ctx.stats["config_changed_detectors"] = lambda: live.changed
        ctx.stats["config_rejected"] = lambda: live.rejected
        ctx.stats["config_live"] = lambda: dict(live.applied_kinds)
        ctx.stats["config_rejected_by_kind"] = lambda: dict(live.rejected_kinds)

        @app.task
        async def follow_live_config() -> None:
            with contextlib.suppress(asyncio.CancelledError):
                await follow_config(ctx.settings, live.handle)
