"""Category catalogue and routing: what a detection kind becomes, and who handles it.

Loaded from ``config/categories.yaml`` (categories with their dedup rules and time limits, and the
detection-kind mapping) and ``config/routing.yaml`` (departments, routes, escalation levels, alert
policy). Component and event codes overlap (component 0103 is a storm-water manhole cover, event 0103
is accumulated garbage), so a category is keyed by ``type:code``, e.g. ``component:0103``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, model_validator

from gridsentinel.cases.calendar import TimeLimit, WorkCalendar
from gridsentinel.cases.events import AlertPolicy
from gridsentinel.cases.gridcode import LEVELS, Level
from gridsentinel.core.config import StrictModel as _Strict
from gridsentinel.core.config import load_yaml
from gridsentinel.core.records import SEVERITIES, Detection
from gridsentinel.errors import ConfigError, GridSentinelError

Severity = Literal["advisory", "warning", "alarm", "critical"]
_CODE = r"^[0-9A-Za-z]{2,8}$"
_KEY = r"^(component|event):[0-9A-Za-z]{2,8}$"
_NAME = r"^[a-z][a-z0-9_]{0,63}$"


class UnknownCategory(GridSentinelError):
    """A detection maps to no category of the catalogue (the dedup stage dead-letters it)."""


class HandleLimits(_Strict):
    """Handling time limit per severity, counted from dispatch."""

    advisory: TimeLimit = Field(description="Limit for advisory cases.")
    warning: TimeLimit = Field(description="Limit for warning cases.")
    alarm: TimeLimit = Field(description="Limit for alarm cases.")
    critical: TimeLimit = Field(description="Limit for critical cases.")

    def for_severity(self, severity: str) -> TimeLimit:
        return getattr(self, severity)


class CaseRules(_Strict):
    """Dedup rules and time limits; every field may be set per category or in ``defaults``."""

    merge_rings: int | None = Field(
        None, ge=0, le=5, description="Dedup rule 2: an open case this many neighbour rings away takes the "
                                      "detection (0 = same cell only).")
    reopen_window_hours: float | None = Field(
        None, ge=0, le=24 * 90, description="Dedup rule 3: a case closed less than this long before the "
                                            "detection is reopened (0 = never reopen).")
    dispatch_limit: TimeLimit | None = Field(
        None, description="Register + dispatch limit, counted from opening.")
    handle_limits: HandleLimits | None = Field(
        None, description="Handling limit per severity, counted from dispatch (and from rework).")
    escalation_limit: TimeLimit | None = Field(
        None, description="Time an escalated case gets at its new level before escalating again.")


class Defaults(CaseRules):
    """Rules for categories that do not set their own; all fields required here."""

    merge_rings: int = Field(1, ge=0, le=5, description="Default merge radius in neighbour rings.")
    reopen_window_hours: float = Field(24.0, ge=0, le=24 * 90, description="Default reopen window (hours).")
    dispatch_limit: TimeLimit = Field(description="Default register + dispatch limit.")
    handle_limits: HandleLimits = Field(description="Default handling limits per severity.")
    escalation_limit: TimeLimit = Field(description="Default time per escalation level.")


class CategorySpec(CaseRules):
    """One case category: a component or event code of a given standard."""

    type: Literal["component", "event"] = Field(description="Component (部件) or event (事件) code.")
    code: str = Field(pattern=_CODE, description="The code as the standard (or city manual) writes it.")
    standard: str = Field(min_length=1, max_length=64, description="Standard (and version) of the code.")
    name: str = Field(min_length=1, max_length=120, description="Human name shown to dispatchers (English).")
    name_zh: str = Field(min_length=1, max_length=120,
                         description="The standard Chinese name (zh-CN), shown by the dashboard in Chinese, "
                                     "e.g. 雨水井盖 for component 0103.")

    @property
    def key(self) -> str:
        return f"{self.type}:{self.code}"


class KindRule(_Strict):
    """How one detection kind becomes a category and a severity."""

    category: str | None = Field(None, pattern=_KEY, description="Category key, e.g. event:0103.")
    by_component_class: dict[str, str] = Field(
        default_factory=dict, description="Component class (4 digits, e.g. 0102) → category key; the class "
                                          "comes from the detection's evidence (component_class or "
                                          "component_id) or its category_code.")
    severity: Severity | None = Field(None, description="Fixed severity for this kind (overrides the "
                                                        "detector's).")
    min_severity: Severity | None = Field(None, description="Lowest severity a case of this kind gets.")

    @model_validator(mode="after")
    def _has_target(self) -> Self:
        if not self.category and not self.by_component_class:
            raise ValueError("set category, or by_component_class (with category as the fallback)")
        return self


class CategoriesFile(_Strict):
    """``config/categories.yaml``."""

    version: str = Field(min_length=1, max_length=40, description="Version of this catalogue.")
    defaults: Defaults = Field(description="Rules for categories that do not set their own.")
    categories: list[CategorySpec] = Field(min_length=1, description="The case categories.")
    kinds: dict[str, KindRule] = Field(description="Detection kind → category and severity.")
    device_kinds: dict[str, str] = Field(
        default_factory=dict, description="Device kind → category key, for the detection kinds `kinds` does "
                                          "not list (generic detectors such as outlier or threshold).")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        keys = [c.key for c in self.categories]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"categories listed twice: {', '.join(dupes)}")
        for kind, rule in self.kinds.items():
            for target in [rule.category, *rule.by_component_class.values()]:
                if target is not None and target not in keys:
                    raise ValueError(f"kinds.{kind}: unknown category {target!r}; known: {', '.join(keys)}")
        for device_kind, target in self.device_kinds.items():
            if target not in keys:
                raise ValueError(f"device_kinds.{device_kind}: unknown category {target!r}; "
                                 f"known: {', '.join(keys)}")
        return self


class Department(_Strict):
    """A department cases are dispatched to."""

    name: str = Field(min_length=1, max_length=120, description="Display name (English).")
    name_zh: str | None = Field(None, min_length=1, max_length=120,
                                description="Chinese display name (zh-CN) for the dashboard in Chinese; "
                                            "the English name is shown when absent.")


class Route(_Strict):
    """Which department handles a category, optionally only under a grid-code prefix."""

    category: str = Field(pattern=_KEY, description="Category key, e.g. component:0103.")
    department: str = Field(pattern=_NAME, description="Department id (a key of departments).")
    grid_prefix: str = Field("", pattern=r"^[0-9]{0,15}$",
                             description="Only cells whose code starts with this; longest prefix wins.")


class RoutingFile(_Strict):
    """``config/routing.yaml``."""

    version: str = Field(min_length=1, max_length=40, description="Version of this routing table.")
    start_level: Level = Field("street", description="Center level where automatic cases are registered.")
    max_level: Level = Field("city", description="Highest center an overdue case escalates to.")
    default_department: str = Field(pattern=_NAME, description="Department for categories with no route.")
    departments: dict[str, Department] = Field(min_length=1, description="Department id → department.")
    routes: list[Route] = Field(default_factory=list, description="Category (and prefix) → department.")
    centers: dict[str, str] = Field(default_factory=dict,
                                    description="Optional display names of centers, by center id "
                                                "(e.g. street:320582110).")
    alerts: AlertPolicy = Field(default_factory=AlertPolicy, description="Alert (notification) policy.")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if LEVELS.index(self.max_level) < LEVELS.index(self.start_level):
            raise ValueError(f"max_level {self.max_level} is below start_level {self.start_level}")
        for name in [self.default_department, *(r.department for r in self.routes)]:
            if name not in self.departments:
                raise ValueError(f"unknown department {name!r}; known: {', '.join(self.departments)}")
        return self


@dataclass(frozen=True, slots=True)
class CategoryPolicy:
    """A category with its rules resolved against the defaults."""

    spec: CategorySpec
    merge_rings: int
    reopen_window_hours: float
    dispatch_limit: TimeLimit
    handle_limits: HandleLimits
    escalation_limit: TimeLimit

    @property
    def key(self) -> str:
        return self.spec.key


@dataclass(frozen=True, slots=True)
class Resolved:
    """What a detection becomes: a category and the severity its case gets."""

    policy: CategoryPolicy
    severity: str


class Catalog:
    """Categories, kind mapping and routing, ready to answer the dedup stage's questions."""

    def __init__(self, categories: CategoriesFile, routing: RoutingFile,
                 calendar: WorkCalendar | None = None) -> None:
        self.categories_file = categories
        self.routing = routing
        self.calendar = calendar or WorkCalendar()
        d = categories.defaults
        self.policies: dict[str, CategoryPolicy] = {
            c.key: CategoryPolicy(
                spec=c,
                merge_rings=d.merge_rings if c.merge_rings is None else c.merge_rings,
                reopen_window_hours=(d.reopen_window_hours if c.reopen_window_hours is None
                                     else c.reopen_window_hours),
                dispatch_limit=c.dispatch_limit or d.dispatch_limit,
                handle_limits=c.handle_limits or d.handle_limits,
                escalation_limit=c.escalation_limit or d.escalation_limit,
            )
            for c in categories.categories
        }
        unknown = [r.category for r in routing.routes if r.category not in self.policies]
        if unknown:
            raise ConfigError(f"routing.yaml: routes name unknown categories {unknown}; "
                              f"known: {', '.join(self.policies)}")

    @property
    def alert_policy(self) -> AlertPolicy:
        return self.routing.alerts

    def policy(self, key: str) -> CategoryPolicy:
        try:
            return self.policies[key]
        except KeyError:
            raise UnknownCategory(f"unknown category {key!r}") from None

    def category_of(self, device_kind: str, kind: str, component_class: str | None) -> tuple[str, str]:
        """The ``(category_code, category_standard)`` a detector stamps on a detection of ``kind`` from a
        device of ``device_kind``; ``("", "")`` when nothing matches (the case stage dead-letters it).

        The one place kind → category is decided (the detection stage gets this method as a plain
        callable): a kind under ``kinds`` (by the component class where the rule has one), else the
        device kind under ``device_kinds``. :meth:`resolve` applies the same ``kinds`` rule.

        >>> catalog = load_catalog(Path(__file__).resolve().parents[2] / "config")
        >>> catalog.category_of("cover_tilt", "cover_tilt", "0102")
        ('0102', 'GB/T 30428.2-2013')
        >>> catalog.category_of("air_quality", "outlier", None)
        ('L002', 'GridSentinel local 2025.1')
        >>> catalog.category_of("camera", "ufo", None)
        ('', '')
        """
        key: str | None
        if kind in self.categories_file.kinds:
            try:
                key = self._kind_key(kind, component_class)
            except UnknownCategory:  # no fallback for this class: resolve() dead-letters it with the reason
                key = None
        else:
            key = self.categories_file.device_kinds.get(device_kind)
        if key is None:
            return "", ""
        spec = self.policies[key].spec
        return spec.code, spec.standard

    def _kind_key(self, kind: str, component_class: str | None) -> str:
        rule = self.categories_file.kinds[kind]
        key = rule.category
        if rule.by_component_class:
            key = rule.by_component_class.get(component_class or "", rule.category)
            if key is None:
                raise UnknownCategory(f"kind {kind!r}: component class {component_class!r} not in "
                                      f"{sorted(rule.by_component_class)} and no fallback category")
        assert key is not None  # guaranteed by KindRule validation
        return key

    def resolve(self, detection: Detection) -> Resolved:
        """The category and severity of ``detection``; :class:`UnknownCategory` when there is none."""
        rule = self.categories_file.kinds.get(detection.kind)
        if rule is None:
            policy = self._by_code(detection)
            return Resolved(policy, detection.severity)
        key = self._kind_key(detection.kind, _component_class(detection) if rule.by_component_class else None)
        severity = rule.severity or detection.severity
        if rule.min_severity and SEVERITIES.index(severity) < SEVERITIES.index(rule.min_severity):
            severity = rule.min_severity
        return Resolved(self.policy(key), severity)

    def _by_code(self, detection: Detection) -> CategoryPolicy:
        code = detection.category_code
        if code in self.policies:
            return self.policies[code]
        matches = [p for p in self.policies.values() if p.spec.code == code]
        if len(matches) > 1:
            matches = [p for p in matches if p.spec.standard == detection.category_standard]
        if len(matches) == 1:
            return matches[0]
        raise UnknownCategory(f"kind {detection.kind!r} has no mapping and category code {code!r} "
                              f"({detection.category_standard}) matches {len(matches)} categories")

    def department_for(self, category_key: str, grid_code: str) -> str:
        """The department a case of this category in this cell is dispatched to (longest prefix wins)."""
        best: Route | None = None
        for route in self.routing.routes:
            if (route.category == category_key and grid_code.startswith(route.grid_prefix)
                    and (best is None or len(route.grid_prefix) > len(best.grid_prefix))):
                best = route
        return best.department if best else self.routing.default_department


class LiveCatalog:
    """The catalogue a running process uses, replaced whole when categories, routing or calendar change
    live (gridsentinel/liveconfig): a new :class:`Catalog` is built and checked completely, then the one
    reference is swapped, so a reader sees the old or the new catalogue, never a mix. Readers take
    ``current`` once per unit of work (a batch of detections, a sweep); ``category_of`` asks the current
    one, so detectors given it label with the new ``kinds`` from the next detection on.

    >>> live = LiveCatalog(load_catalog(Path(__file__).resolve().parents[2] / "config"))
    >>> old = live.current
    >>> new = live.replace(categories=old.categories_file.model_copy(update={"device_kinds": {}}))
    >>> live.current is new, live.category_of("air_quality", "outlier", None)
    (True, ('', ''))
    """

    def __init__(self, catalog: Catalog) -> None:
        self.current = catalog
        self._listeners: list[Callable[[Catalog], None]] = []

    def category_of(self, device_kind: str, kind: str, component_class: str | None) -> tuple[str, str]:
        return self.current.category_of(device_kind, kind, component_class)

    def subscribe(self, listener: Callable[[Catalog], None]) -> None:
        """Call ``listener(new catalog)`` after every replacement."""
        self._listeners.append(listener)

    def replace(self, *, categories: CategoriesFile | None = None, routing: RoutingFile | None = None,
                calendar: WorkCalendar | None = None) -> Catalog:
        """Build the catalogue with the given parts (the others as they are) and swap it in; a
        ``ConfigError`` (e.g. routes naming a category the new categories lack) leaves the old one."""
        cur = self.current
        new = Catalog(categories or cur.categories_file, routing or cur.routing, calendar or cur.calendar)
        self.current = new
        for listener in self._listeners:
            listener(new)
        return new


def _component_class(detection: Detection) -> str | None:
    ev = detection.evidence
    cls = ev.get("component_class")
    if isinstance(cls, str) and len(cls) == 4 and cls.isdigit():
        return cls
    comp = ev.get("component_id")
    if isinstance(comp, str) and len(comp) == 16 and comp.isdigit():
        return comp[6:10]  # 6 district + 2 major + 2 minor + 6 sequence
    code = detection.category_code.split(":")[-1]
    return code if len(code) == 4 and code.isdigit() else None


def load_catalog(config_dir: Path | str) -> Catalog:
    """Load ``categories.yaml``, ``routing.yaml`` and (if present) ``calendar.yaml`` from ``config_dir``."""
    config_dir = Path(config_dir)
    categories = load_yaml(config_dir / "categories.yaml", CategoriesFile)
    routing = load_yaml(config_dir / "routing.yaml", RoutingFile)
    cal_path = config_dir / "calendar.yaml"
    calendar = load_yaml(cal_path, WorkCalendar) if cal_path.exists() else WorkCalendar()
    return Catalog(categories, routing, calendar)
