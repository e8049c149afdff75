"""Job and task states and the transitions allowed between them: the one place that owns them.

The tables are data (``JOB_TRANSITIONS``, ``TASK_TRANSITIONS``): print them, test them, and go through
``check_job`` / ``check_task`` before any status is written. Applying a transition to a database row lives
in ``farm.lifecycle.transitions``; this module has no I/O.
"""

from __future__ import annotations

from enum import StrEnum

from farm.errors import InvalidTransition


class JobStatus(StrEnum):
    QUEUED = "queued"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"
    PAUSE_REQUESTED = "pause-requested"
    PAUSED = "paused"
    CANCEL_REQUESTED = "cancel-requested"
    REQUEUEING = "requeueing"


class TaskStatus(StrEnum):
    QUEUED = "queued"
    DISPATCHED = "dispatched"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SOFT_FAILED = "soft-failed"
    CANCELED = "canceled"
    PAUSED = "paused"


J, T = JobStatus, TaskStatus

JOB_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    J.QUEUED: frozenset({J.ACTIVE, J.PAUSE_REQUESTED, J.PAUSED, J.CANCEL_REQUESTED, J.CANCELED, J.FAILED}),
    J.ACTIVE: frozenset(
        {J.COMPLETED, J.FAILED, J.PAUSE_REQUESTED, J.CANCEL_REQUESTED, J.REQUEUEING, J.QUEUED}
    ),
    J.PAUSE_REQUESTED: frozenset({J.PAUSED, J.ACTIVE, J.CANCEL_REQUESTED, J.COMPLETED, J.FAILED}),
    J.PAUSED: frozenset({J.QUEUED, J.CANCEL_REQUESTED, J.CANCELED, J.REQUEUEING}),
    J.CANCEL_REQUESTED: frozenset({J.CANCELED}),
    J.REQUEUEING: frozenset({J.QUEUED}),
    J.COMPLETED: frozenset({J.REQUEUEING}),
    J.FAILED: frozenset({J.REQUEUEING}),
    J.CANCELED: frozenset({J.REQUEUEING}),
}

TASK_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    T.QUEUED: frozenset({T.DISPATCHED, T.CANCELED, T.PAUSED, T.FAILED}),
    T.DISPATCHED: frozenset({T.RUNNING, T.COMPLETED, T.QUEUED, T.SOFT_FAILED, T.FAILED, T.CANCELED}),
    T.RUNNING: frozenset({T.COMPLETED, T.QUEUED, T.SOFT_FAILED, T.FAILED, T.CANCELED, T.PAUSED}),
    T.SOFT_FAILED: frozenset({T.DISPATCHED, T.QUEUED, T.FAILED, T.CANCELED, T.PAUSED}),
    T.FAILED: frozenset({T.QUEUED}),
    T.CANCELED: frozenset({T.QUEUED}),
    T.PAUSED: frozenset({T.QUEUED, T.CANCELED}),
    T.COMPLETED: frozenset({T.QUEUED}),
}

JOB_TERMINAL: frozenset[JobStatus] = frozenset({J.COMPLETED, J.FAILED, J.CANCELED})
TASK_TERMINAL: frozenset[TaskStatus] = frozenset({T.COMPLETED, T.FAILED, T.CANCELED})
#: Tasks a worker may be given.
TASK_RUNNABLE: frozenset[TaskStatus] = frozenset({T.QUEUED, T.SOFT_FAILED})
#: Tasks that occupy a worker slot right now.
TASK_IN_FLIGHT: frozenset[TaskStatus] = frozenset({T.DISPATCHED, T.RUNNING})
#: Jobs whose runnable tasks the scheduler hands out.
JOB_DISPATCHABLE: frozenset[JobStatus] = frozenset({J.QUEUED, J.ACTIVE})


def check_job(ident: str, old: JobStatus, new: JobStatus) -> None:
    """Raise ``InvalidTransition`` unless the job may go from ``old`` to ``new``."""
    if new not in JOB_TRANSITIONS[old]:
        raise InvalidTransition("job", ident, old.value, new.value)


def check_task(ident: str, old: TaskStatus, new: TaskStatus) -> None:
    """Raise ``InvalidTransition`` unless the task may go from ``old`` to ``new``."""
    if new not in TASK_TRANSITIONS[old]:
        raise InvalidTransition("task", ident, old.value, new.value)
