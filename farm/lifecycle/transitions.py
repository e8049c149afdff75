"""Applying state transitions to rows, inside the caller's DB transaction; each is logged once."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from farm.db.models import Job, Task
from farm.domain.states import (
    JOB_TERMINAL,
    TASK_TERMINAL,
    JobStatus,
    TaskStatus,
    check_job,
    check_task,
)

log = logging.getLogger(__name__)


def set_job_status(job: Job, new: JobStatus, now: datetime, reason: str = "") -> None:
    """Move a job to ``new`` if the table allows it (``InvalidTransition`` otherwise)."""
    old = JobStatus(job.status)
    if old == new:
        return
    check_job(job.id, old, new)
    job.status = new.value
    job.status_reason = reason
    if new is JobStatus.ACTIVE and job.started_at is None:
        job.started_at = now
    if new in JOB_TERMINAL:
        job.finished_at = now
    elif new in (JobStatus.QUEUED, JobStatus.REQUEUEING):
        job.finished_at = None
    log.info("job %s: %s -> %s%s", job.id, old.value, new.value, f" ({reason})" if reason else "")


def set_task_status(task: Task, new: TaskStatus, now: datetime, reason: str = "") -> None:
    """Move a task to ``new`` if the table allows it (``InvalidTransition`` otherwise)."""
    old = TaskStatus(task.status)
    if old == new:
        return
    check_task(task.id, old, new)
    task.status = new.value
    task.updated_at = now
    log.info(
        "task %s (job %s): %s -> %s%s",
        task.id,
        task.job_id,
        old.value,
        new.value,
        f" ({reason})" if reason else "",
    )


def task_counts(session: Session, job_id: str) -> dict[TaskStatus, int]:
    """How many tasks of the job are in each status."""
    rows = session.execute(
        select(Task.status, func.count()).where(Task.job_id == job_id).group_by(Task.status)
    ).all()
    return {TaskStatus(status): int(count) for status, count in rows}


def settle_job(session: Session, job: Job, now: datetime) -> None:
    """Derive the job's status from its tasks after a task changed (completion, cancel, pause, failure)."""
    counts = task_counts(session, job.id)
    total = sum(counts.values())
    in_flight = counts.get(TaskStatus.DISPATCHED, 0) + counts.get(TaskStatus.RUNNING, 0)
    status = JobStatus(job.status)
    if status is JobStatus.CANCEL_REQUESTED and in_flight == 0:
        for task in session.scalars(select(Task).where(Task.job_id == job.id)):
            if TaskStatus(task.status) not in TASK_TERMINAL and task.status != TaskStatus.CANCELED:
                set_task_status(task, TaskStatus.CANCELED, now, "job canceled")
        set_job_status(job, JobStatus.CANCELED, now, job.status_reason or "canceled by request")
        return
    if status is JobStatus.PAUSE_REQUESTED and in_flight == 0:
        for task in session.scalars(select(Task).where(Task.job_id == job.id)):
            if TaskStatus(task.status) in (TaskStatus.QUEUED, TaskStatus.SOFT_FAILED):
                set_task_status(task, TaskStatus.PAUSED, now, "job paused")
        set_job_status(job, JobStatus.PAUSED, now, "paused by request")
        return
    if status in (JobStatus.ACTIVE, JobStatus.QUEUED, JobStatus.PAUSE_REQUESTED):
        if counts.get(TaskStatus.COMPLETED, 0) == total and total > 0:
            if status is JobStatus.QUEUED:
                set_job_status(job, JobStatus.ACTIVE, now)
            set_job_status(job, JobStatus.COMPLETED, now)
        elif (
            counts.get(TaskStatus.FAILED, 0) > 0
            and in_flight == 0
            and not (counts.get(TaskStatus.QUEUED, 0) or counts.get(TaskStatus.SOFT_FAILED, 0))
        ):
            failed = counts[TaskStatus.FAILED]
            set_job_status(job, JobStatus.FAILED, now, f"{failed} of {total} chunk(s) failed")
