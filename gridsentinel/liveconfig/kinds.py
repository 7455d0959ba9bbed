"""The config kinds that go through the versioned path (validate -> diff -> apply -> history -> rollback).

>>> sorted(KINDS)
['calendar', 'cameras', 'categories', 'detectors', 'receivers', 'routing']
>>> kind_for_path("config/routing.yaml").name, kind_for_path("/tmp/candidate.yaml")
('routing', None)
>>> obj, problems = KINDS["calendar"].validate("timezone: Mars/Olympus\\n", "cal.yaml", no_siblings)
>>> problems
["cal.yaml: timezone: got 'Mars/Olympus'; expected unknown IANA time zone 'Mars/Olympus'"]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from gridsentinel.alerts.delivery.config import ReceiversFile
from gridsentinel.cases.calendar import WorkCalendar
from gridsentinel.cases.categories import Catalog, CategoriesFile, RoutingFile
from gridsentinel.core.config import format_validation_error, parse_yaml
from gridsentinel.engineering.configs import DETECTORS, GRID_SIBLING, KindSpec, Sibling
from gridsentinel.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def no_siblings(_name: str) -> str:
    """A sibling reader that knows nothing: cross-file checks are skipped."""
    return ""


def check_model(text: str, where: str, model: type[M]) -> tuple[M | None, list[str]]:
    """``text`` parsed and validated as ``model``; problems one per line: file, key path, value, expectation."""
    try:
        data = parse_yaml(text, where)
    except ConfigError as exc:
        return None, [str(exc)]
    except ValueError as exc:  # PyYAML builds dates itself: 2025-13-01 raises ValueError, not YAMLError
        return None, [f"{where}: a value does not parse: {exc}"]
    if not isinstance(data, dict):
        return None, [f"{where}: (top level): expected a mapping, got {type(data).__name__}"]
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, format_validation_error(exc, where, flat=True)


def _sibling(sibling: Sibling, name: str, model: type[M]) -> M | None:
    """The live ``name`` config as ``model`` (None when unknown or itself invalid: no cross-check)."""
    text = sibling(name)
    return check_model(text, name, model)[0] if text else None


def _cross(where: str, catalog: Any) -> list[str]:
    try:
        catalog()
    except ConfigError as exc:
        return [f"{where}: {exc} (checked against the live config)"]
    return []


def _categories(text: str, where: str, sibling: Sibling) -> tuple[Any, list[str]]:
    cats, problems = check_model(text, where, CategoriesFile)
    routing = _sibling(sibling, "routing", RoutingFile) if cats is not None else None
    if cats is not None and routing is not None:
        problems = _cross(where, lambda: Catalog(cats, routing))
    return (cats if not problems else None), problems


def _routing(text: str, where: str, sibling: Sibling) -> tuple[Any, list[str]]:
    routing, problems = check_model(text, where, RoutingFile)
    cats = _sibling(sibling, "categories", CategoriesFile) if routing is not None else None
    if routing is not None and cats is not None:
        problems = _cross(where, lambda: Catalog(cats, routing))
    return (routing if not problems else None), problems


def _receivers(text: str, where: str, sibling: Sibling) -> tuple[Any, list[str]]:
    config, problems = check_model(text, where, ReceiversFile)
    cats = _sibling(sibling, "categories", CategoriesFile) if config is not None else None
    if config is not None and cats is not None:
        known = {c.key for c in cats.categories}
        for i, r in enumerate(config.receivers):
            for key in r.match.categories:
                if key not in known:
                    problems.append(f"{where}: receivers.{i}.match.categories: got {key!r}; expected a "
                                    f"category of the live categories.yaml ({', '.join(sorted(known))})")
    grid = sibling(GRID_SIBLING) if config is not None else ""
    if config is not None and grid:
        problems += _centers_in_grid(config, where, grid)
    return (config if not problems else None), problems


def _centers_in_grid(config: ReceiversFile, where: str, grid_text: str) -> list[str]:
    """Each receiver's ``center`` must own cells of the grid (a typo would silently deliver nothing)."""
    import json

    try:
        features = json.loads(grid_text).get("features", [])
        codes = {str(f.get("properties", {}).get("code", "")) for f in features}
    except (ValueError, AttributeError):
        return []  # an unreadable grid is the grid's own error (gridsentinel up and the worker report it)
    problems = []
    for i, r in enumerate(config.receivers):
        center = r.scope
        if center is not None and not any(code.startswith(center.prefix) for code in codes):
            known = sorted({code[:len(center.prefix)] for code in codes if len(code) == 15})
            problems.append(f"{where}: receivers.{i}.center: got {r.center!r}; expected a {center.level} of "
                            f"config/grid.geojson ({', '.join(f'{center.level}:{k}' for k in known[:10])})")
    return problems


def _cameras(text: str, where: str, _sibling: Sibling) -> tuple[Any, list[str]]:
    from gridsentinel.detectors.camera.config import CamerasFile  # OpenCV: only when a camera config is checked

    return check_model(text, where, CamerasFile)


KINDS: dict[str, KindSpec] = {k.name: k for k in [
    DETECTORS,
    KindSpec("cameras", "cameras.yaml", _cameras, "camera config",
             "the frames stage: cameras added, removed or edited get new detector stacks on their next frame "
             "(they warm up again); unchanged cameras keep their detectors and state; privacy and "
             "state_every_s apply from the next frame"),
    KindSpec("categories", "categories.yaml", _categories, "case categories",
             "the live catalogue: kind -> category of the next detection, merge radius, reopen window and "
             "time limits of the next case; category names for alerts"),
    KindSpec("routing", "routing.yaml", _routing, "routing",
             "the live catalogue: department of the next case, escalation levels of the next sweep, which "
             "events notify (alert policy) from the next event"),
    KindSpec("receivers", "receivers.yaml", _receivers, "alert receivers",
             "the alert delivery: receivers, their match rules and secrets, CAP settings and MQTT "
             "topic/QoS from the next alert (mqtt.enabled at the next restart)"),
    KindSpec("calendar", "calendar.yaml", lambda t, w, _s: check_model(t, w, WorkCalendar), "working calendar",
             "due-time computations from the next one on (new cases, dispatches, escalations); the time "
             "zone of alert times"),
]}


def kind_for_path(path: Path | str) -> KindSpec | None:
    """The kind whose file name ``path`` has (``config apply FILE`` infers the kind from it)."""
    name = Path(path).name
    return next((k for k in KINDS.values() if k.file_name == name), None)


def kind_named(name: str) -> KindSpec:
    try:
        return KINDS[name]
    except KeyError:
        raise ConfigError(f"unknown config kind {name!r}; use one of {', '.join(KINDS)}") from None
