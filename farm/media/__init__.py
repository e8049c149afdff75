"""Thumbnails, preview movies and the video product, made from stored frames."""

from __future__ import annotations

import logging
from collections.abc import Callable

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
