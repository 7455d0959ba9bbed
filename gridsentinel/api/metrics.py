"""Prometheus text exposition (format 0.0.4), written by hand: a handful of gauges and counters.

>>> print(render([Metric("gs_cases", "gauge", "Cases by status.", {(("status", "open"),): 2.0})]), end="")
# HELP gs_cases Cases by status.
# TYPE gs_cases gauge
gs_cases{status="open"} 2
"""

from __future__ import annotations

from dataclasses import dataclass, field

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    type: str  # gauge | counter
    help: str
    samples: dict[Labels, float] = field(default_factory=dict)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render(metrics: list[Metric]) -> str:
    lines: list[str] = []
    for m in metrics:
        lines.append(f"# HELP {m.name} {m.help}")
        lines.append(f"# TYPE {m.name} {m.type}")
        for labels, value in sorted(m.samples.items()):
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            lines.append(f"{m.name}{{{text}}} {_number(value)}" if text else f"{m.name} {_number(value)}")
    return "\n".join(lines) + "\n"
