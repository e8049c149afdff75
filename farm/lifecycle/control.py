"""Pause, resume, retry and unblock: the API records the wish, the scheduler carries out what needs a worker.

Every status change goes through ``farm.lifecycle.transitions``. Pausing marks the job ``pause-requested``; the
scheduler stops handing out its chunks, lets the running ones finish (or stops them at once with ``now``) and then
the job is ``paused``. Resuming puts the paused chunks back in the queue. Retrying requeues chunks that failed or
were canceled, with a fresh count of attempts.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from farm.clock import utc
from farm.contract import BlockedNode, Blocklist
from farm.db.models import Job, Task
from farm.domain.states import JOB_TERMINAL, TASK_IN_FLIGHT, JobStatus, TaskStatus
from farm.errors import Conflict, NotFound
from farm.lifecycle import actions, blocklist
from farm.lifecycle.actions import Action
from farm.lifecycle.transitions import set_job_status, set_task_status, settle_job


def request_cancel(session: Session, job: Job, now: datetime, reason: str = "canceled by request") -> None:
    """Record the wish; queued chunks are canceled now, running ones by the scheduler."""
    if not actions.check(Action.CANCEL, job.id, JobStatus(job.status)):
        return
    set_job_status(job, JobStatus.CANCEL_REQUESTED, now, reason)
    waiting = (TaskStatus.QUEUED, TaskStatus.SOFT_FAILED, TaskStatus.PAUSED)
    for task in session.scalars(select(Task).where(Task.job_id == job.id, Task.status.in_(waiting))):
        set_task_status(task, TaskStatus.CANCELED, now, reason, job)
    settle_job(session, job, now)


def settle_unheld(session: Session, job: Job, now: datetime) -> bool:
    """A job being canceled or paused (or already over) whose chunks no slot holds any more, e.g. dispatched
    before a restart: cancel its in-flight chunks if it is being canceled, and settle it. True if it changed."""
    status = JobStatus(job.status)
    if status in JOB_TERMINAL:
        return False
    if status is JobStatus.CANCEL_REQUESTED:
        for task in session.scalars(select(Task).where(Task.job_id == job.id, Task.status.in_(list(TASK_IN_FLIGHT)))):
            set_task_status(task, TaskStatus.CANCELED, now, "job canceled", job)
    settle_job(session, job, now)
    return job.status != status


def request_pause(session: Session, job: Job, now: datetime, stop_running: bool = False) -> None:
    """Stop handing out the job's chunks; with ``stop_running`` the chunks rendering now are stopped too."""
    status = JobStatus(job.status)
    if not actions.check(Action.PAUSE, job.id, status):
        if status is JobStatus.PAUSE_REQUESTED:
            job.pause_now = job.pause_now or stop_running
        return
    reason = "pause requested: stopping running chunks" if stop_running else "pause requested: running chunks finish"
    set_job_status(job, JobStatus.PAUSE_REQUESTED, now, reason)
    job.pause_now = stop_running
    settle_job(session, job, now)  # nothing running: paused at once


def resume(session: Session, job: Job, now: datetime) -> None:
    """Put a paused job's chunks back in the queue (or withdraw a pause that has not happened yet)."""
    status = JobStatus(job.status)
    if not actions.check(Action.RESUME, job.id, status):
        return
    job.pause_now = False
    if status is JobStatus.PAUSE_REQUESTED:
        set_job_status(job, JobStatus.ACTIVE, now, "pause withdrawn")
        return
    for task in session.scalars(select(Task).where(Task.job_id == job.id, Task.status == TaskStatus.PAUSED.value)):
        set_task_status(task, TaskStatus.QUEUED, now, "job resumed")
    set_job_status(job, JobStatus.QUEUED, now, "resumed")
    settle_job(session, job, now)  # every chunk may already be done


def retry(session: Session, job: Job, now: datetime) -> int:
    """Requeue the chunks that failed or were canceled, each with a fresh count of attempts; returns how many."""
    status = JobStatus(job.status)
    actions.check(Action.RETRY, job.id, status)
    again = (TaskStatus.FAILED.value, TaskStatus.CANCELED.value)
    tasks = list(session.scalars(select(Task).where(Task.job_id == job.id, Task.status.in_(again))))
    if not tasks:
        raise Conflict(f"job {job.id} has no failed or canceled chunks to retry")
    if status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED):
        set_job_status(job, JobStatus.REQUEUEING, now, f"retrying {len(tasks)} chunk(s)")
        set_job_status(job, JobStatus.QUEUED, now, f"retrying {len(tasks)} chunk(s)")
    for task in tasks:
        task.failures = 0
        set_task_status(task, TaskStatus.QUEUED, now, "retry requested")
        if status is JobStatus.PAUSED:
            set_task_status(task, TaskStatus.PAUSED, now, "job paused")
    return len(tasks)


def blocklist_out(session: Session, job: Job) -> Blocklist:
    """Nodes that failed chunks of the job, with whether they are blocked."""
    return Blocklist(
        job_id=job.id,
        nodes=[
            BlockedNode(
                node=e.node,
                failures=e.failures,
                blocked=e.blocked_at is not None,
                blocked_at=utc(e.blocked_at) if e.blocked_at else None,
                reason=e.reason,
            )
            for e in blocklist.entries(session, job.id)
        ],
    )


def unblock(session: Session, job: Job, node: str | None, now: datetime) -> list[str]:
    """Give the node (every node when None) a fresh start on the job; returns the nodes that were blocked."""
    if node is not None and node not in {e.node for e in blocklist.entries(session, job.id)}:
        raise NotFound(f"node {node!r} has no failed chunks of job {job.id}; `farm status {job.id}` lists them")
    cleared = blocklist.unblock(session, job.id, node)
    if cleared and JobStatus(job.status) is JobStatus.FAILED and job.status_reason.startswith(blocklist.NO_NODE_LEFT):
        # The job failed only because no node could take it: with a node back, it runs again.
        retry(session, job, now)
        job.status_reason = f"unblocked {', '.join(cleared)}; running again"
    elif cleared and JobStatus(job.status) in (JobStatus.QUEUED, JobStatus.ACTIVE):
        job.status_reason = f"unblocked {', '.join(cleared)}"
    return cleared
