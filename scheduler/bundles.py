"""Bundles (issue 12): several short chunks of one job travel to a slot in one Ray call.

A chunk of a frame that renders in milliseconds costs more in the round trip (the Ray call, the dispatch pass that
hands it out and the one that applies its report) than in rendering. Once a job's chunks are measured short, the
dispatcher hands a free slot a few of them at once (``RenderWorker.render_bundle``). Each chunk keeps its own
attempt, frames and facts; only the trip is shared. Pure policy: no Ray, no database.

How many: as many as fit in ``bundle_s`` seconds at the job's measured pace, at most ``bundle_max``, and never
more than the job's runnable chunks spread over the free slots (the other slots get their share). A job not yet
measured, a chunk that failed before (it goes alone, so its retry is judged alone), and long chunks travel alone.
"""

from __future__ import annotations

from collections import OrderedDict

#: Completed chunks of a job measured before its chunks may be bundled (the first includes fetching inputs).
MIN_MEASURED = 2
#: Weight of the newest measure in the moving average of a job's seconds per chunk.
WEIGHT = 0.3


class ChunkTimes:
    """Seconds per chunk of recent jobs, from their completed attempts (a moving average), for the newest
    ``limit`` jobs."""

    def __init__(self, limit: int = 2000) -> None:
        self.limit = limit
        self._jobs: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def add(self, job_id: str, seconds: float) -> None:
        mean, count = self._jobs.pop(job_id, (seconds, 0))
        self._jobs[job_id] = (mean + WEIGHT * (seconds - mean) if count else seconds, count + 1)
        while len(self._jobs) > self.limit:
            self._jobs.popitem(last=False)

    def forget(self, job_id: str) -> None:
        self._jobs.pop(job_id, None)

    def estimate(self, job_id: str) -> float | None:
        """The job's seconds per chunk, or None while fewer than ``MIN_MEASURED`` chunks were measured."""
        mean, count = self._jobs.get(job_id, (0.0, 0))
        return mean if count >= MIN_MEASURED else None


def size(estimate: float | None, runnable: int, idle: int, bundle_s: float, bundle_max: int) -> int:
    """How many chunks of a job go to one free slot: 1 unless its chunks are measured short."""
    if estimate is None or bundle_max <= 1 or bundle_s <= 0:
        return 1
    by_time = int(bundle_s / max(estimate, 1e-4))
    spread = -(-max(runnable, 1) // max(idle, 1))  # the job's runnable chunks over the free slots, rounded up
    return max(1, min(bundle_max, by_time, spread))
