from __future__ import annotations

import itertools

import pytest

from gridsentinel.cases.gridcode import (
    GridCodeError,
    cells_within,
    center_for,
    escalation_ladder,
    level_above,
    neighbours,
    parse_grid_code,
    ring_distances,
)

pytestmark = pytest.mark.unit


def test_parse_splits_the_four_parts() -> None:
    g = parse_grid_code("320582110152102")
    assert (g.district, g.street, g.community, g.sequence) == ("320582", "110", "152", "102")
    assert g.prefix("street") == "320582110"


@pytest.mark.parametrize("bad", ["32058211015210", "3205821101521020", "32058211015210x", "",
                                 "３２０５８２１１０１５２１０２"])
def test_parse_rejects_anything_but_15_ascii_digits(bad: str) -> None:
    with pytest.raises(GridCodeError, match="15 digits"):
        parse_grid_code(bad)


def test_escalation_ladder_climbs_prefixes_to_the_city() -> None:
    ladder = escalation_ladder("320582110152102")
    assert [c.id for c in ladder] == ["grid:320582110152102", "community:320582110152", "street:320582110",
                                      "district:320582", "city:3205"]
    assert center_for("320582110152102", "district").prefix == "320582"
    assert level_above("city") == "city"


def test_neighbours_come_from_the_adjacency_map_and_ignore_self_loops() -> None:
    adj = {"A": {"A", "B"}, "B": {"A"}}
    assert neighbours("A", adj) == {"B"}
    assert neighbours("unknown", adj) == frozenset()


def test_rings_expand_breadth_first() -> None:
    # A line of cells: 0 - 1 - 2 - 3 - 4
    cells = [f"32058211015210{i}" for i in range(5)]
    adj: dict[str, set[str]] = {c: set() for c in cells}
    for a, b in itertools.pairwise(cells):
        adj[a].add(b)
        adj[b].add(a)
    assert cells_within(cells[0], 0, adj) == {cells[0]}
    assert cells_within(cells[2], 1, adj) == set(cells[1:4])
    assert ring_distances(cells[0], 3, adj) == {cells[0]: 0, cells[1]: 1, cells[2]: 2, cells[3]: 3}
    with pytest.raises(ValueError):
        cells_within(cells[0], -1, adj)
