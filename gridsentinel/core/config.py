"""The config kernel every config file goes through: one strict base model, one YAML loader, one formatter
of validation errors.

A bad file stops with the file, the key path, the bad value and what was expected, never a traceback:

>>> from pydantic import Field, ValidationError
>>> class Limits(StrictModel):
...     hold_s: float = Field(0.0, ge=0, description="Seconds the level must hold.")
>>> try:
...     Limits.model_validate({"hold_s": -1, "colour": "red"})
... except ValidationError as exc:
...     print("\\n".join(format_validation_error(exc, "limits.yaml")))
...     print("\\n".join(format_validation_error(exc, "limits.yaml", flat=True)))
limits.yaml: invalid configuration
  hold_s: Input should be greater than or equal to 0 (got -1)
  colour: Extra inputs are not permitted (got 'red')
limits.yaml: hold_s: got -1; expected greater than or equal to 0
limits.yaml: colour: got 'red'; expected no such key here
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from gridsentinel.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """The base of every config model: unknown keys are errors (a typo never passes silently) and a
    loaded config is immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def read_text(path: Path | str) -> str:
    """A config file's text; ``ConfigError`` naming the file when it cannot be read."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read ({exc.strerror or exc})") from None


def parse_yaml(text: str, where: str) -> Any:
    """Parsed YAML (an empty document is ``{}``); ``ConfigError`` with the line and column of a syntax error.

    >>> parse_yaml("a: b: c", "x.yaml")
    Traceback (most recent call last):
    ...
    gridsentinel.errors.ConfigError: x.yaml: not valid YAML at line 1, column 5: mapping values are not allowed here
    >>> parse_yaml("holiday: 2025-12-32", "calendar.yaml")
    Traceback (most recent call last):
    ...
    gridsentinel.errors.ConfigError: calendar.yaml: a value YAML reads as a date or number is impossible: day is ...
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{where}: not valid YAML{at}: {getattr(exc, 'problem', None) or exc}") from None
    except ValueError as exc:  # PyYAML's constructors raise it for an impossible date such as 2025-12-32
        raise ConfigError(f"{where}: a value YAML reads as a date or number is impossible: {exc}") from None
    return {} if data is None else data


def read_yaml(path: Path | str) -> Any:
    """A YAML file, parsed; ``ConfigError`` when it cannot be read or parsed."""
    return parse_yaml(read_text(path), str(path))


def validate(data: Any, model: type[M], where: str, *, what: str = "configuration") -> M:
    """``data`` as ``model``; every problem in one ``ConfigError`` (see :func:`format_validation_error`)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("\n".join(format_validation_error(exc, where, what=what))) from None


def load_yaml(path: Path | str, model: type[M], *, what: str = "configuration") -> M:
    """Load a YAML file into ``model``; any problem becomes a ConfigError naming file, key and value."""
    return validate(read_yaml(path), model, str(path), what=what)


def format_validation_error(exc: ValidationError, where: str, *, prefix: tuple[str | int, ...] = (),
                            flat: bool = False, what: str = "configuration") -> list[str]:
    """Every problem of ``exc``: its key path (dotted, after ``prefix``), the bad value and the expectation.

    The block form (default) is a header ``<where>: invalid <what>`` and one indented line per problem
    with pydantic's message; it is raised as one error. The ``flat`` form is one self-contained line per
    problem, ``<where>: <key path>: got <value>; expected <what was expected>``, for lists of problems
    (``config validate``, the configs API).
    """
    lines = [] if flat else [f"{where}: invalid {what}"]
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in (*prefix, *err["loc"])) or "(top level)"
        missing = err["type"] == "missing"
        got = "(missing)" if missing else short_value(err.get("input"))
        if not flat:
            lines.append(f"  {loc}: {err['msg']}" + ("" if missing else f" (got {got})"))
            continue
        expected = err["msg"].removeprefix("Value error, ").removeprefix("Input should be ")
        if missing:
            expected = "this key (required)"
        elif err["type"] == "extra_forbidden":
            expected = "no such key here"
        elif err["type"] == "literal_error":
            expected = "one of " + expected
        lines.append(f"{where}: {loc}: got {got}; expected {expected}")
    return lines


def short_value(value: Any) -> str:
    """A value as an error message shows it: its repr, a mapping as ``{...}``, at most 60 characters."""
    text = repr(value) if not isinstance(value, dict) else "{...}"
    return text if len(text) <= 60 else text[:57] + "..."
