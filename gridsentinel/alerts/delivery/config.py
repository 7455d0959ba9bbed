"""``config/receivers.yaml``: webhook receivers with their routing, the MQTT alert topic, CAP settings."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from gridsentinel.cases.gridcode import Center, GridCodeError, parse_center
from gridsentinel.core.config import StrictModel, load_yaml
from gridsentinel.core.devices import DEVICE_TOPIC_ROOT, RESERVED_DEVICE_IDS
from gridsentinel.errors import ConfigError

Severity = Literal["advisory", "warning", "alarm", "critical"]
# CAP 1.2 <category> values.
CapCategory = Literal[
    "Geo",
    "Met",
    "Safety",
    "Security",
    "Rescue",
    "Fire",
    "Health",
    "Env",
    "Transport",
    "Infra",
    "CBRNE",
    "Other",
]


class Match(StrictModel):
    """Which events a receiver gets; an empty list means any."""

    grid_prefixes: tuple[str, ...] = Field(
        (), description="Grid-code prefixes (a district is 6 digits, a street 9)."
    )
    categories: tuple[str, ...] = Field((), description="Category keys, e.g. event:L005.")
    min_severity: Severity = Field("advisory", description="Lowest case severity delivered.")
    event_types: tuple[str, ...] = Field(
        (), description="Case event types (open, reopen, escalate, …) among those the alert policy notifies."
    )

    @model_validator(mode="after")
    def _valid(self) -> Self:
        bad = [p for p in self.grid_prefixes if not (p.isdigit() and 1 <= len(p) <= 15)]
        if bad:
            raise ValueError(f"grid_prefixes must be 1–15 digits, got {bad}")
        bad = [c for c in self.categories if c.partition(":")[0] not in ("component", "event")]
        if bad:
            raise ValueError(f"categories must be keys like event:L005, got {bad}")
        return self


class Retry(StrictModel):
    """Retries with exponential backoff: waits initial, 2×initial, 4×initial … capped at max."""

    max_attempts: int = Field(5, ge=1, le=20, description="Attempts before the event is dead-lettered.")
    initial_backoff_s: float = Field(1.0, ge=0, le=600, description="Wait after the first failure.")
    max_backoff_s: float = Field(300.0, ge=0, le=3600, description="Longest wait between attempts.")

    def delay(self, failed_attempts: int) -> float:
        """Seconds to wait after ``failed_attempts`` failures (1, 2, …).

        >>> [Retry(initial_backoff_s=1, max_backoff_s=5).delay(n) for n in (1, 2, 3, 4)]
        [1.0, 2.0, 4.0, 5.0]
        """
        return float(min(self.max_backoff_s, self.initial_backoff_s * 2 ** (failed_attempts - 1)))


class Receiver(StrictModel):
    """One webhook receiver (a dispatch center's system)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$", description="Receiver id, used in logs.")
    url: str = Field(pattern=r"^https?://", max_length=2000, description="Where events are POSTed.")
    secret_env: str | None = Field(
        None, pattern=r"^[A-Z][A-Z0-9_]{0,127}$", description="Environment variable holding the HMAC secret."
    )
    secret: str | None = Field(None, min_length=16, description="The HMAC secret itself (development only).")
    format: Literal["json", "cap"] = Field(
        "json",
        description="json: the case event; cap: CAP 1.2 XML for emergency categories (JSON otherwise).",
    )
    center: str | None = Field(
        None,
        description="The dispatch center this receiver serves, <level>:<prefix> (city 4 digits, district 6, "
        "street 9, community 12), e.g. street:320582110: only its cases' events are sent, further narrowed "
        "by match. The center must have cells in config/grid.geojson.",
    )
    match: Match = Field(default_factory=Match, description="Which events this receiver gets.")
    retry: Retry = Field(default_factory=Retry, description="Retry policy.")
    timeout_s: float = Field(10.0, gt=0, le=120, description="Per-attempt HTTP timeout.")

    @model_validator(mode="after")
    def _one_secret(self) -> Self:
        if (self.secret_env is None) == (self.secret is None):
            raise ValueError("set exactly one of secret_env and secret")
        return self

    @field_validator("center")
    @classmethod
    def _center_id(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_center(value)
            except GridCodeError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _prefixes_inside_center(self) -> Self:
        # A grid prefix outside the center could never match: say so instead of delivering nothing.
        center = self.scope
        if center is not None:
            outside = [p for p in self.match.grid_prefixes
                       if not (p.startswith(center.prefix) or center.prefix.startswith(p))]
            if outside:
                raise ValueError(f"match.grid_prefixes {outside} lie outside center {center.id}: this receiver "
                                 f"gets only cells under {center.prefix}; drop them or change the center")
        return self

    @property
    def scope(self) -> Center | None:
        """The receiver's center (None: the whole city, narrowed only by ``match``)."""
        return parse_center(self.center) if self.center is not None else None

    def resolve_secret(self, env: Mapping[str, str] | None = None) -> str:
        # The one environment read outside Settings, on purpose: ``secret_env`` names where a secret lives
        # (a variable per receiver, chosen in receivers.yaml), so secrets stay out of config files and out
        # of Settings, which is logged and passed everywhere; it is not a setting with a default.
        if self.secret is not None:
            return self.secret
        env = os.environ if env is None else env
        value = env.get(self.secret_env or "", "")
        if len(value) < 16:
            raise ConfigError(
                f"receiver {self.name}: environment variable {self.secret_env} must hold the "
                f"webhook secret (at least 16 characters)"
            )
        return value


class CapSettings(StrictModel):
    """CAP 1.2 messages for emergency-class categories."""

    sender: str = Field(
        "gridsentinel@localhost",
        pattern=r"^[^\s,<&]+$",
        description="CAP <sender>: unique id of this system (no spaces, commas, < or &).",
    )
    sender_name: str = Field("GridSentinel", max_length=200, description="CAP <senderName>.")
    scope: Literal["Public", "Restricted", "Private"] = Field("Restricted", description="CAP <scope>.")
    restriction: str = Field(
        "grid-management dispatch centers",
        max_length=200,
        description="CAP <restriction> (used when scope is Restricted).",
    )
    language: str = Field("en-US", description="CAP <language> (RFC 3066).")
    emergency_categories: dict[str, CapCategory] = Field(
        default_factory=dict, description="Category key → CAP <category>; these categories are emergencies."
    )


class MqttSettings(StrictModel):
    enabled: bool = Field(True, description="Publish notified case events to MQTT.")
    topic_prefix: str = Field(
        "gs/v1/alerts",
        pattern=r"^[^#+]+$",
        description="Events go to <prefix>/<district 6>/<street 3>/<community 3>/<grid_code 15>.",
    )
    qos: Literal[0, 1, 2] = Field(1, description="MQTT QoS (1 = at least once).")

    @field_validator("topic_prefix")
    @classmethod
    def _outside_device_topics(cls, value: str) -> str:
        # gs/v1/<x>/... belongs to device <x> unless <x> is reserved (core/devices.py): alerts published
        # under another name there could land in (or be spoofed by) a device's own topics.
        parts = value.strip("/").split("/")
        root = DEVICE_TOPIC_ROOT.split("/")
        if parts[:len(root)] == root and (len(parts) == len(root) or parts[len(root)] not in RESERVED_DEVICE_IDS):
            raise ValueError(f"topic_prefix {value!r} is inside the device topics {DEVICE_TOPIC_ROOT}/{{device_id}}; "
                             f"use {DEVICE_TOPIC_ROOT}/{'|'.join(sorted(RESERVED_DEVICE_IDS))} or a prefix outside "
                             f"{DEVICE_TOPIC_ROOT}/")
        return value


class ReceiversFile(StrictModel):
    """``config/receivers.yaml``."""

    version: str = Field(min_length=1, max_length=40, description="Version of this file.")
    receivers: list[Receiver] = Field(default_factory=list, description="Webhook receivers.")
    mqtt: MqttSettings = Field(default_factory=MqttSettings, description="MQTT alert publishing.")
    cap: CapSettings = Field(default_factory=CapSettings, description="CAP 1.2 settings.")

    @model_validator(mode="after")
    def _unique(self) -> Self:
        names = [r.name for r in self.receivers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"receiver names listed twice: {', '.join(dupes)}")
        return self


def load_receivers(path: Path | str) -> ReceiversFile:
    """Load and validate ``receivers.yaml``; ConfigError names file, key and value."""
    return load_yaml(path, ReceiversFile)
