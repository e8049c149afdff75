"""Applying state transitions to rows, inside the caller's DB transaction; each is logged once.

A task's transition also moves it between its job's counters (``Job.tasks_runnable``, ``tasks_in_flight``, …), so
deciding what a job's status is (``settle_job``) reads one row instead of counting the job's tasks. Writers of a
job's tasks hold the job's row (``FOR UPDATE`` on PostgreSQL, the write lock on SQLite) while they do.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, object_session

from farm.clock import utc
from farm.db.models import Job, Task
from farm.domain import reasons
from farm.domain.states import (
    JOB_TERMINAL,
    TASK_RUNNABLE,
    TASK_TERMINAL,
    JobStatus,
    TaskStatus,
    check_job,
    check_task,
)
from farm.lifecycle import notify, tallies

log = logging.getLogger(__name__)


def set_job_status(job: Job, new: JobStatus, now: datetime, reason: str = "") -> None:
    """Move a job to ``new`` if the table allows it (``InvalidTransition`` otherwise)."""
    old = JobStatus(job.status)
    if old == new:
        return
    check_job(job.id, old, new)
    first_start = new is JobStatus.ACTIVE and job.started_at is None
    job.status = new
    job.status_reason = reason
    if new is JobStatus.ACTIVE and job.started_at is None:
        job.started_at = now
    if new in JOB_TERMINAL:
        job.finished_at = now
    elif new in (JobStatus.QUEUED, JobStatus.REQUEUEING):
        job.finished_at = None
    log.info("job %s: %s -> %s%s", job.id, old.value, new.value, f" ({reason})" if reason else "")
    # Issue 19: the webhooks' events, queued in this transaction (farm.lifecycle.notify).
    event = (
        new.value
        if new in JOB_TERMINAL
        else "started"
        if first_start
        else "queued"
        if old is JobStatus.REQUEUEING and new is JobStatus.QUEUED
        else ""
    )
    session = object_session(job)
    if event and session is not None:
        notify.emit(session, job, event, now)


#: Which counter of its job a task in each status is counted in.
COUNTER: dict[TaskStatus, str] = {
    TaskStatus.QUEUED: "tasks_runnable",
    TaskStatus.SOFT_FAILED: "tasks_runnable",
    TaskStatus.DISPATCHED: "tasks_in_flight",
    TaskStatus.RUNNING: "tasks_in_flight",
    TaskStatus.COMPLETED: "tasks_completed",
    TaskStatus.FAILED: "tasks_failed",
    TaskStatus.CANCELED: "tasks_canceled",
    TaskStatus.PAUSED: "tasks_paused",
}


def set_task_status(task: Task, new: TaskStatus, now: datetime, reason: str = "", job: Job | None = None) -> None:
    """Move a task to ``new`` if the table allows it (``InvalidTransition`` otherwise), and between its job's
    counters (``job``: the task's job when the caller holds it; else it is looked up in the task's session)."""
    old = TaskStatus(task.status)
    if old == new:
        return
    check_task(task.id, old, new)
    waited_since = task.updated_at
    task.status = new
    task.updated_at = now
    session = object_session(task)
    if job is None:
        job = session.get(Job, task.job_id) if session is not None else None
    if new is TaskStatus.DISPATCHED and job is not None and session is not None and waited_since is not None:
        # Issue 15: the wait of each chunk, observed at its dispatch (``farm_queue_wait_seconds``).
        tallies.chunk_waited(session, job.company_id, (utc(now) - utc(waited_since)).total_seconds())
    if job is not None and COUNTER[old] != COUNTER[new]:
        setattr(job, COUNTER[old], getattr(job, COUNTER[old]) - 1)
        setattr(job, COUNTER[new], getattr(job, COUNTER[new]) + 1)
    log.info(
        "task %s (job %s): %s -> %s%s",
        task.id,
        task.job_id,
        old.value,
        new.value,
        f" ({reason})" if reason else "",
    )


def recount(session: Session, job: Job) -> None:
    """Set the job's task counters and frames done from its rows (after rows were written by hand)."""
    from farm.db.models import Frame

    counts = {name: 0 for name in set(COUNTER.values())}
    total = 0
    for status, count in session.execute(
        select(Task.status, func.count()).where(Task.job_id == job.id).group_by(Task.status)
    ).all():
        counts[COUNTER[TaskStatus(status)]] += int(count)
        total += int(count)
    for name, value in counts.items():
        setattr(job, name, value)
    job.tasks_total = total
    done, size, last = session.execute(
        select(func.count(), func.coalesce(func.sum(Frame.size), 0), func.max(Frame.created_at)).where(
            Frame.job_id == job.id
        )
    ).one()
    job.frames_done, job.frames_bytes, job.last_frame_at = int(done or 0), int(size or 0), last


def settle_job(session: Session, job: Job, now: datetime) -> None:
    """Derive the job's status from its tasks after a task changed (completion, cancel, pause, failure)."""
    total, in_flight = job.tasks_total, job.tasks_in_flight
    status = JobStatus(job.status)
    if status is JobStatus.CANCEL_REQUESTED and in_flight == 0:
        for task in session.scalars(select(Task).where(Task.job_id == job.id, Task.status.not_in(list(TASK_TERMINAL)))):
            set_task_status(task, TaskStatus.CANCELED, now, "job canceled", job)
        set_job_status(job, JobStatus.CANCELED, now, job.status_reason or reasons.make("canceled"))
        return
    # Paused only with something left to pause: a pause whose job's last chunks were all in flight (a bundle can
    # hold them all) ends the way those chunks end, completed or failed, below.
    if status is JobStatus.PAUSE_REQUESTED and in_flight == 0 and job.tasks_runnable + job.tasks_paused > 0:
        for task in session.scalars(select(Task).where(Task.job_id == job.id, Task.status.in_(list(TASK_RUNNABLE)))):
            set_task_status(task, TaskStatus.PAUSED, now, "job paused", job)
        set_job_status(job, JobStatus.PAUSED, now, reasons.make("paused"))
        return
    if status in (JobStatus.ACTIVE, JobStatus.QUEUED, JobStatus.PAUSE_REQUESTED):
        if job.tasks_completed == total and total > 0:
            if status is JobStatus.QUEUED:
                set_job_status(job, JobStatus.ACTIVE, now)
            set_job_status(job, JobStatus.COMPLETED, now)
        elif job.tasks_failed > 0 and in_flight == 0 and job.tasks_runnable == 0:
            set_job_status(
                job, JobStatus.FAILED, now, reasons.make("chunks_failed", failed=job.tasks_failed, total=total)
            )
        elif job.tasks_canceled > 0 and in_flight == 0 and job.tasks_runnable == 0 and job.tasks_paused == 0:
            # Issue 16: chunks canceled one by one and every other chunk completed. Not "completed": that promises
            # every frame; the job ends canceled and says so (`retry` renders the canceled chunks).
            why = reasons.make("chunks_canceled", canceled=job.tasks_canceled, total=total)
            if status is not JobStatus.QUEUED:
                set_job_status(job, JobStatus.CANCEL_REQUESTED, now, why)
            set_job_status(job, JobStatus.CANCELED, now, why)
