"""Attempt outcomes, fault classes and the verdict on a finished attempt.

Faults are classified so that nobody pays for what is not theirs:

* ``scene``: the scene or the job cannot render as given (not a .blend, no camera, invalid output settings,
  missing inputs, a Python error in Blender). The chunk fails at once; retrying elsewhere would not help, and
  the node did nothing wrong.
* ``node``: the machine failed (Blender killed by a signal, out of memory, a device error, a hung render whose
  lease expired, a worker that died). The attempt counts against the chunk (retries) and the node (blocklist).
* ``storage``: the object store was unreachable or full. Counts against neither: the chunk waits with backoff
  and runs again when the store is back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from farm.domain import reasons
from farm.domain.attempts import Fault, Outcome
from farm.domain.frames import format_frames
from farm.domain.states import TaskStatus

#: Messages that name the machine rather than the scene, even when Blender reports them as a Python error.
_NODE_PATTERNS = re.compile(
    r"out of memory|cannot allocate|memory allocation|no space left|cuda|optix|\bhip\b|metal|oneapi|"
    r"device (?:error|lost|not found)|illegal address|wrote no file",
    re.IGNORECASE,
)


def classify_blender_error(message: str, hint: str = "") -> Fault:
    """Whose fault an error Blender reported (the process still alive) is; ``hint`` is what the child said."""
    if hint == Fault.SCENE.value:
        return Fault.SCENE
    if _NODE_PATTERNS.search(message):
        return Fault.NODE
    return Fault.SCENE


def classify_exit(exit_code: int | None) -> Fault:
    """A Blender process that died (signal, abort, non-zero exit) is the node's fault: crashes, the OOM killer
    and driver failures all end this way, and a retry on a healthy node is the right answer."""
    return Fault.NODE


@dataclass(frozen=True)
class Verdict:
    """What the scheduler does with a finished attempt."""

    task: TaskStatus
    reason: str
    counts_against_chunk: bool = False
    counts_against_node: bool = False
    retry_after_s: float = 0.0
    cause: str = ""  # what went wrong, without the verdict's wording (for the job's failure summary)


#: Store outages: the chunk waits this long before its next try, doubling up to the cap.
STORAGE_BACKOFF_FIRST_S = 2.0
STORAGE_BACKOFF_MAX_S = 60.0


#: A lost worker counts against nothing, but a chunk whose worker is lost this many times in a row (the facts never
#: arrive: the chunk may be what kills it) has its next loss counted as a failed attempt, so it cannot loop forever.
LOST_LIMIT = 5


def storage_backoff_s(waits: int) -> float:
    """How long a chunk waits before its next try after ``waits`` consecutive store outages (1, 2, …)."""
    return float(min(STORAGE_BACKOFF_MAX_S, STORAGE_BACKOFF_FIRST_S * 2.0 ** max(0, waits - 1)))


def decide(
    outcome: Outcome,
    fault: Fault,
    reason: str,
    failures_before: int,
    max_attempts: int,
    missing_frames: list[int],
    storage_waits: int = 0,
    lost_in_a_row: int = 0,
) -> Verdict:
    """The verdict on an attempt of a chunk whose job is still running.

    ``failures_before``: failed attempts of the chunk that counted so far; ``missing_frames``: frames of the chunk
    with no stored file after an attempt that says it completed; ``storage_waits``: consecutive store outages of
    the chunk including this one; ``lost_in_a_row``: the chunk's attempts just before this one that all ended lost.
    """
    if outcome is Outcome.COMPLETED and missing_frames:
        outcome, fault = Outcome.FAILED, Fault.NODE
        reason = reasons.make("frames_missing", frames=_frames(missing_frames))
    if outcome is Outcome.COMPLETED:
        return Verdict(TaskStatus.COMPLETED, "")
    if outcome is Outcome.LOST and lost_in_a_row >= LOST_LIMIT:
        # Counts against the chunk (retries, then failed), not the node: a loss does not say whose fault it was.
        cause = reasons.make("lost_in_a_row", times=lost_in_a_row + 1, reason=reason)
        failures = failures_before + 1
        if failures >= max_attempts:
            why = reasons.make("attempts_failed", failures=failures, reason=cause)
            return Verdict(TaskStatus.FAILED, why, counts_against_chunk=True, cause=cause)
        return Verdict(TaskStatus.SOFT_FAILED, cause, counts_against_chunk=True, cause=cause)
    if outcome in (Outcome.CANCELED, Outcome.LOST):
        return Verdict(TaskStatus.QUEUED, reason or reasons.make("requeued_by_scheduler"))
    if fault is Fault.STORAGE:
        wait = storage_backoff_s(max(1, storage_waits))
        return Verdict(
            TaskStatus.QUEUED,
            reasons.make("store_wait", detail=reason, wait=f"{wait:g}"),
            retry_after_s=wait,
        )
    if fault is Fault.SCENE:
        return Verdict(
            TaskStatus.FAILED, reasons.make("scene_error", reason=reason), counts_against_chunk=True, cause=reason
        )
    failures = failures_before + 1
    if failures >= max_attempts:
        return Verdict(
            TaskStatus.FAILED,
            reasons.make("attempts_failed", failures=failures, reason=reason),
            True,
            counts_against_node=True,
            cause=reason,
        )
    return Verdict(TaskStatus.SOFT_FAILED, reason, True, counts_against_node=True, cause=reason)


def _frames(frames: list[int]) -> str:
    return format_frames(sorted(frames))
