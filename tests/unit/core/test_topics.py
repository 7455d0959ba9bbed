"""Topic names, and the guard on deleting a run's topics by prefix."""

from __future__ import annotations

import pytest

from gridsentinel.core.topics import Topics, delete_topics

pytestmark = pytest.mark.unit


def test_a_prefix_gives_a_run_topics_of_its_own() -> None:
    assert Topics("t1a2b.").all() == [f"t1a2b.{t}" for t in Topics().all()]


@pytest.mark.parametrize("prefixes", [(), ("t1a2b.", "")])
def test_an_empty_prefix_is_refused_before_kafka_is_asked(prefixes: tuple[str, ...]) -> None:
    # "" starts every topic name: it would delete the whole broker, gs.* included
    with pytest.raises(ValueError, match="empty prefix"):
        delete_topics("127.0.0.1:1", *prefixes)
