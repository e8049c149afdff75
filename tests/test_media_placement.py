"""Media tasks carry the store's keys, so they run on the scheduler's node, never on a render node (issue 15)."""

from __future__ import annotations

import pytest
import ray

from farm.media import on_this_node

pytestmark = pytest.mark.ray


def test_media_tasks_are_pinned_hard_to_the_starting_node(farm):  # the session farm: Ray is up
    options = on_this_node()
    strategy = options["scheduling_strategy"]
    assert strategy.node_id == ray.get_runtime_context().get_node_id() and strategy.soft is False

    @ray.remote(num_cpus=0)
    def where() -> str:
        return ray.get_runtime_context().get_node_id()

    assert ray.get(where.options(**options).remote(), timeout=60) == strategy.node_id
