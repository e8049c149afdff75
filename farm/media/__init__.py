"""Thumbnails, preview movies and the video product, made from stored frames."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def each(*hooks: Callable[[str], None]) -> Callable[[str], None]:
    """One on-completion hook that calls every hook with the job id; one failing does not stop the others."""

    def run(job_id: str) -> None:
        for hook in hooks:
            try:
                hook(job_id)
            except Exception:
                log.exception("job %s: on-completion hook %r failed", job_id, hook)

    return run


def on_this_node() -> dict[str, Any]:
    """Ray options that keep a media task on the node of the process that starts it (the scheduler's).

    Preview and video tasks are handed the store's full configuration, keys included: they must never land on a
    render node, which holds no store secret (issue 15)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = ray.get_runtime_context().get_node_id()
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=node, soft=False)}
