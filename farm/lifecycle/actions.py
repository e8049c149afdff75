"""The actions tables: what a user may do to a job, or to one chunk of it, in which state. The API refuses by
them, the CLI shows them (``farm status``), the monitor draws its buttons from them; ``farm.lifecycle.control``
carries the actions out.

``acts_in``: states where the action changes something. ``accepted_in``: those plus states where it is a harmless
no-op (pausing a paused job). Anything else is refused with a ``Conflict`` that says which states would do.

A chunk action (``CHUNK_RULES``) depends on two states: its job's (``job_in``: where chunk actions may be taken at
all) and the chunk's own (``acts_in`` / ``accepted_in``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from farm.domain.states import JOB_TERMINAL, JobStatus, TaskStatus
from farm.errors import Conflict

J, T = JobStatus, TaskStatus


class Action(StrEnum):
    CANCEL = "cancel"
    PAUSE = "pause"
    RESUME = "resume"
    RETRY = "retry"
    UNBLOCK = "unblock"
    PRIORITY = "priority"


@dataclass(frozen=True)
class Rule:
    """When an action may be taken, and how its refusal reads."""

    action: Action
    acts_in: frozenset[JobStatus]
    accepted_in: frozenset[JobStatus]
    refusal: str  # completes "job X is <status>: ..."


_LIVE = frozenset(set(J) - JOB_TERMINAL)

RULES: dict[Action, Rule] = {
    Action.CANCEL: Rule(
        Action.CANCEL,
        acts_in=_LIVE - {J.CANCEL_REQUESTED},
        accepted_in=_LIVE | {J.CANCELED},
        refusal="there is nothing to cancel",
    ),
    Action.PAUSE: Rule(
        Action.PAUSE,
        acts_in=frozenset({J.QUEUED, J.ACTIVE}),
        accepted_in=frozenset({J.QUEUED, J.ACTIVE, J.PAUSE_REQUESTED, J.PAUSED}),
        refusal="only queued or active jobs can be paused",
    ),
    Action.RESUME: Rule(
        Action.RESUME,
        acts_in=frozenset({J.PAUSED, J.PAUSE_REQUESTED}),
        accepted_in=frozenset({J.PAUSED, J.PAUSE_REQUESTED, J.QUEUED, J.ACTIVE}),
        refusal="only paused jobs can be resumed",
    ),
    Action.RETRY: Rule(
        Action.RETRY,
        acts_in=frozenset({J.FAILED, J.CANCELED, J.ACTIVE, J.PAUSED}),
        accepted_in=frozenset(set(J) - {J.CANCEL_REQUESTED, J.REQUEUEING}),
        refusal="retry it once it is canceled",
    ),
    Action.UNBLOCK: Rule(
        Action.UNBLOCK,
        acts_in=frozenset(set(J) - {J.CANCELED, J.COMPLETED, J.CANCEL_REQUESTED}),
        accepted_in=frozenset(J),
        refusal="",
    ),
    Action.PRIORITY: Rule(
        Action.PRIORITY,
        acts_in=_LIVE - {J.CANCEL_REQUESTED},
        accepted_in=_LIVE - {J.CANCEL_REQUESTED},
        refusal="priority orders only jobs that still render",
    ),
}


def check(action: Action, job_id: str, status: JobStatus) -> bool:
    """True when the action changes something, False for a no-op; ``Conflict`` when it is refused."""
    rule = RULES[action]
    if status in rule.acts_in:
        return True
    if status in rule.accepted_in:
        return False
    raise Conflict(
        f"job {job_id} is {status.value}: {rule.refusal}",
        code=f"refused.{action.value}",  # issue 16: the monitor says it in the viewer's language
        params={"job": job_id, "status": status.value},
    )


def available(status: JobStatus) -> list[Action]:
    """The actions that would change something for a job in ``status`` (buttons, `farm status`). Unblock names a
    node, so it is offered where the job's blocklist is shown, not here."""
    return [action for action, rule in RULES.items() if status in rule.acts_in and action is not Action.UNBLOCK]


# ---- one chunk ------------------------------------------------------------------------------------------------
class ChunkAction(StrEnum):
    REQUEUE = "requeue"
    CANCEL = "cancel"


@dataclass(frozen=True)
class ChunkRule:
    """When an action on one chunk may be taken, and how its refusals read."""

    action: ChunkAction
    job_in: frozenset[JobStatus]
    acts_in: frozenset[TaskStatus]
    accepted_in: frozenset[TaskStatus]
    job_refusal: str  # completes "job X is <status>: ..."
    refusal: str  # completes "chunk N of job X is <status>: ..."


CHUNK_RULES: dict[ChunkAction, ChunkRule] = {
    # Render the chunk again: a running one is stopped first, a finished one keeps its frames until the new ones
    # are stored. A finished job is queued again for it.
    ChunkAction.REQUEUE: ChunkRule(
        ChunkAction.REQUEUE,
        job_in=frozenset(set(J) - {J.CANCEL_REQUESTED, J.REQUEUEING}),
        acts_in=frozenset({T.DISPATCHED, T.RUNNING, T.SOFT_FAILED, T.COMPLETED, T.FAILED, T.CANCELED}),
        accepted_in=frozenset({T.DISPATCHED, T.RUNNING, T.SOFT_FAILED, T.COMPLETED, T.FAILED, T.CANCELED, T.QUEUED}),
        job_refusal="its chunks can be requeued once it is canceled",
        refusal="resume the job to render it",
    ),
    # Leave the chunk out: a running one is stopped; the rest of the job goes on, and a job whose other chunks all
    # completed ends canceled (its frames are not all there), so `retry` brings the chunk back.
    ChunkAction.CANCEL: ChunkRule(
        ChunkAction.CANCEL,
        job_in=frozenset({J.QUEUED, J.ACTIVE, J.PAUSE_REQUESTED, J.PAUSED}),
        acts_in=frozenset({T.QUEUED, T.SOFT_FAILED, T.DISPATCHED, T.RUNNING, T.PAUSED}),
        accepted_in=frozenset({T.QUEUED, T.SOFT_FAILED, T.DISPATCHED, T.RUNNING, T.PAUSED, T.CANCELED}),
        job_refusal="only the chunks of a job that still renders can be canceled",
        refusal="only chunks still to render can be canceled",
    ),
}


def check_chunk(action: ChunkAction, job_id: str, job: JobStatus, index: int, chunk: TaskStatus) -> bool:
    """True when the chunk action changes something, False for a no-op; ``Conflict`` (saying why) when refused."""
    rule = CHUNK_RULES[action]
    if job is J.CANCEL_REQUESTED and action is ChunkAction.CANCEL:
        return False  # the whole job is being canceled already
    if job not in rule.job_in:
        raise Conflict(
            f"job {job_id} is {job.value}: {rule.job_refusal}",
            code=f"chunk_job_refused.{action.value}",  # issue 16: in the viewer's language on the page
            params={"job": job_id, "status": job.value},
        )
    if chunk in rule.acts_in:
        return True
    if chunk in rule.accepted_in:
        return False
    raise Conflict(
        f"chunk {index} of job {job_id} is {chunk.value}: {rule.refusal}",
        code=f"chunk_refused.{action.value}",
        params={"chunk": index, "job": job_id, "status": chunk.value},
    )


def chunk_available(job: JobStatus, chunk: TaskStatus) -> list[ChunkAction]:
    """The chunk actions that would change something for a chunk in ``chunk`` of a job in ``job`` (the chunk
    table's buttons, ``TaskOut.actions``)."""
    return [action for action, rule in CHUNK_RULES.items() if job in rule.job_in and chunk in rule.acts_in]
