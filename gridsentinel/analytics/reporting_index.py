"""Selective-reporting index: where do people report far fewer problems than machines find?

For each unit (a community or a street, by grid-code prefix) and category family we count the problems
**machines** found (sensor, camera) and the problems **people** reported (citizen, inspector, hotline), in
the cells that have instruments for that family, and ask whether the unit's people share is lower than
that of comparable units.

The test (conditional Poisson, one-sided exact binomial). Model a unit's people and machine counts as
independent Poisson counts, ``people ~ Poisson(e * a)`` and ``machines ~ Poisson(e * b)``, where ``e`` is
the unit's (unknown) exposure: how many problems occur there and how many instruments watch. Given the
total ``n = people + machines``, ``people ~ Binomial(n, a / (a + b))``: the exposure cancels, so a busy or
a heavily instrumented unit is not flagged for being busy. Under the null hypothesis the unit's people
share equals the reference share ``p0``: the median of the people shares of the *other* units of the same
family (leave-one-out, so a large under-reporting unit does not pull its own reference down; the median,
not the pooled share, so one unit whose people report unusually much does not make all its peers look
like under-reporters). The one-sided p-value is
``P(X <= people | n, p0)``.

Real units differ among themselves more than binomial noise allows (neighbourhoods, habits, which
channel a city promotes): with a plain binomial test every such difference becomes a flag once counts are
large. So the spread of the peers is estimated too (method of moments: the peers' Pearson dispersion
``phi`` around ``p0`` gives the intra-unit correlation ``rho = (phi - 1) / (mean n - 1)``, at least 0) and the
p-value comes from the beta-binomial with mean ``p0`` and that ``rho``: a unit is flagged for lying outside
what its peers' own variation explains. With peers that agree (``rho = 0``) this is the exact binomial test.
All tested (unit, family) pairs form one family of hypotheses; their p-values
are adjusted with the Benjamini-Hochberg step-up procedure, and a pair is flagged when its adjusted
q-value is at most ``fdr`` (0.1 by default): on average at most 10 % of the flags are false discoveries.

>>> tallies = [Tally("A", "drainage", people=2, machines=40), Tally("B", "drainage", people=20, machines=20),
...            Tally("C", "drainage", people=21, machines=19), Tally("D", "drainage", people=19, machines=21)]
>>> [(r.unit, r.flagged) for r in assess_units(tallies)]
[('A', True), ('B', False), ('C', False), ('D', False)]
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from scipy.stats import betabinom, binom

MACHINE_SOURCES = frozenset({"sensor", "camera"})
PEOPLE_SOURCES = frozenset({"citizen", "inspector", "hotline"})
DEFAULT_FDR = 0.1
DEFAULT_MIN_TOTAL = 5  # fewer problems than this in a unit x family: not tested (no power, only noise)
DEFAULT_MIN_PEERS = 2  # at least this many other units of the family to pool a reference share from


@dataclass(frozen=True, slots=True)
class Observation:
    """One problem seen in a cell: by machines, by people, or both (a case merged from both channels)."""

    unit: str
    family: str
    cell: str
    by_machine: bool
    by_people: bool


@dataclass(frozen=True, slots=True)
class Tally:
    """Problems of one family in one unit, counted in its instrumented cells."""

    unit: str
    family: str
    people: int
    machines: int

    @property
    def total(self) -> int:
        return self.people + self.machines


@dataclass(frozen=True, slots=True)
class UnitResult:
    unit: str
    family: str
    people: int
    machines: int
    tested: bool
    reference_share: float | None = None  # median people share of the other units of the family
    expected_people: float | None = None  # n * reference_share
    p_value: float | None = None
    q_value: float | None = None
    flagged: bool = False
    reason: str = ""

    @property
    def share(self) -> float | None:
        n = self.people + self.machines
        return self.people / n if n else None

    @property
    def shortfall(self) -> float | None:
        """How many times fewer people reports than expected (expected / observed, inf when none)."""
        if self.expected_people is None:
            return None
        return float("inf") if self.people == 0 else self.expected_people / self.people


def tally(observations: Iterable[Observation], instrumented: dict[str, set[str]] | None = None) -> list[Tally]:
    """Count people and machine problems per (unit, family), only in cells with instruments for the family.

    ``instrumented`` maps a family to its instrumented cells; without it a cell counts as instrumented for
    a family when machines found at least one problem of that family there in the data (a proxy: a device
    that never fired is not seen). A problem found by both channels counts once on each side.
    """
    obs = list(observations)
    if instrumented is None:
        instrumented = defaultdict(set)
        for o in obs:
            if o.by_machine:
                instrumented[o.family].add(o.cell)
    counts: dict[tuple[str, str], list[int]] = {}
    for o in obs:
        if o.cell not in instrumented.get(o.family, ()):
            continue
        c = counts.setdefault((o.unit, o.family), [0, 0])
        c[0] += int(o.by_people)
        c[1] += int(o.by_machine)
    return [Tally(u, f, p, m) for (u, f), (p, m) in sorted(counts.items())]


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values), in the input order.

    q_(i) = min over j >= i of p_(j) * m / j for the sorted p-values, capped at 1.

    >>> [round(q, 4) for q in benjamini_hochberg([0.01, 0.04, 0.03, 0.5])]
    [0.04, 0.0533, 0.0533, 0.5]
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    q = [0.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p_values[i] * m / rank)
        q[i] = min(running, 1.0)
    return q


def assess_units(tallies: Sequence[Tally], *, fdr: float = DEFAULT_FDR, min_total: int = DEFAULT_MIN_TOTAL,
               min_peers: int = DEFAULT_MIN_PEERS, people_word: str = "people",
               machine_word: str = "machines", max_rho: float | None = None) -> list[UnitResult]:
    """Test every (unit, family) tally against the other units of its family; BH across all tests.

    ``people_word`` and ``machine_word`` name the two channels in the reasons (a source without machines
    may compare residents with city staff, say so). ``max_rho`` caps the peers' estimated spread (0: the
    plain binomial test, for comparison).
    """
    if not 0 < fdr < 1:
        raise ValueError(f"fdr must be between 0 and 1, got {fdr}")
    by_family: dict[str, list[Tally]] = defaultdict(list)
    for t in tallies:
        by_family[t.family].append(t)
    pending: list[tuple[Tally, float, float, float]] = []  # (tally, reference share, rho, p)
    results: dict[tuple[str, str], UnitResult] = {}
    for family, group in by_family.items():
        for t in group:
            peers = [o for o in group if o is not t and o.total > 0]
            if t.total < min_total:
                results[(t.unit, family)] = UnitResult(
                    t.unit, family, t.people, t.machines, False,
                    reason=f"not tested: {t.total} problems (< {min_total})")
                continue
            if len(peers) < min_peers:
                results[(t.unit, family)] = UnitResult(
                    t.unit, family, t.people, t.machines, False,
                    reason=f"not tested: {len(peers)} comparable units (< {min_peers})")
                continue
            # Peers big enough to have a share worth the name; all peers when too few are.
            solid = [o for o in peers if o.total >= min_total]
            reference = solid if len(solid) >= min_peers else peers
            p0 = statistics.median(o.people / o.total for o in reference)
            rho = peer_spread(reference, p0)
            if max_rho is not None:
                rho = min(rho, max_rho)
            pending.append((t, p0, rho, lower_tail(t.people, t.total, p0, rho)))
    qs = benjamini_hochberg([p for _, _, _, p in pending])
    for (t, p0, rho, p), q in zip(pending, qs, strict=True):
        expected = t.total * p0
        flagged = q <= fdr and t.people < expected
        share = t.people / t.total
        reason = (f"{people_word} reported {t.people} of {t.total} problems ({share:.0%}) where {machine_word} "
                  f"found {t.machines}; the other units' median {people_word} share is {p0:.0%}, so about "
                  f"{expected:.1f} {people_word} reports were expected; one-sided "
                  + (f"beta-binomial (peers' spread rho = {rho:.3f}) " if rho > 0 else "exact binomial ")
                  + f"P(X <= {t.people}) = {p:.2g}, Benjamini-Hochberg q = {q:.2g} "
                  f"{'<=' if q <= fdr else '>'} {fdr:g}: {'flagged' if flagged else 'not flagged'}")
        results[(t.unit, t.family)] = UnitResult(t.unit, t.family, t.people, t.machines, True, p0, expected, p, q,
                                                 flagged, reason)
    return [results[(t.unit, t.family)] for t in tallies]


def peer_spread(peers: Sequence[Tally], p0: float) -> float:
    """Intra-unit correlation ``rho`` of the peers around ``p0`` (method of moments; 0 when they agree).

    >>> peer_spread([Tally("a", "f", 10, 10), Tally("b", "f", 10, 10), Tally("c", "f", 10, 10)], 0.5)
    0.0
    >>> round(peer_spread([Tally("a", "f", 2, 18), Tally("b", "f", 10, 10), Tally("c", "f", 18, 2)], 0.5), 3)
    0.621
    """
    if len(peers) < 2 or not 0 < p0 < 1:
        return 0.0
    chi2 = sum((o.people - o.total * p0) ** 2 / (o.total * p0 * (1 - p0)) for o in peers)
    phi = chi2 / (len(peers) - 1)
    mean_n = sum(o.total for o in peers) / len(peers)
    if mean_n <= 1:
        return 0.0
    return min(max(0.0, (phi - 1) / (mean_n - 1)), 0.99)


def lower_tail(people: int, total: int, p0: float, rho: float) -> float:
    """``P(X <= people)`` for ``X`` binomial (``rho = 0``) or beta-binomial with mean ``p0`` and correlation ``rho``."""
    if rho <= 0 or not 0 < p0 < 1:
        return float(binom.cdf(people, total, p0))
    scale = (1 - rho) / rho
    return float(betabinom.cdf(people, total, p0 * scale, (1 - p0) * scale))


def flags(results: Iterable[UnitResult]) -> list[UnitResult]:
    """The flagged results, strongest (smallest q, then largest shortfall) first."""
    return sorted((r for r in results if r.flagged), key=lambda r: (r.q_value or 0.0, -(r.expected_people or 0.0)))
