"""The API's /metrics, exposed with the official Prometheus client: the route describes its samples as
``Metric``s (read from the case store and the app's counters at each request) and ``render`` writes them,
with the process's CPU and memory, in the text format 0.0.4.

>>> text = render([Metric("gs_cases", "gauge", "Cases by status.", {(("status", "open"),): 2.0})])
>>> [line for line in text.splitlines() if line.startswith("gs_cases")]
['gs_cases{status="open"} 2.0']
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric as Family

from gridsentinel.observability import ReadCollector

Labels = tuple[tuple[str, str], ...]
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    type: str  # gauge | counter
    help: str
    samples: dict[Labels, float] = field(default_factory=dict)


def families(metrics: Iterable[Metric]) -> Iterable[Family]:
    for m in metrics:
        names = sorted({k for labels in m.samples for k, _ in labels})
        family: GaugeMetricFamily | CounterMetricFamily
        if m.type == "counter":
            family = CounterMetricFamily(m.name, m.help, labels=names)
        else:
            family = GaugeMetricFamily(m.name, m.help, labels=names)
        for labels, value in sorted(m.samples.items()):
            values = dict(labels)
            family.add_metric([values.get(k, "") for k in names], value)
        yield family


def render(metrics: list[Metric], *, process: bool = True) -> str:
    """The exposition text of ``metrics`` (and, with ``process``, of this process's CPU and memory)."""
    registry = CollectorRegistry(auto_describe=False)
    if process:
        ProcessCollector(registry=registry)
    registry.register(ReadCollector(lambda: families(metrics)))
    return generate_latest(registry).decode()
