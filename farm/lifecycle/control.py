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
from farm.domain.states import JobStatus, TaskStatus
from farm.errors import Conflict, NotFound
from farm.lifecycle import blocklist
from farm.lifecycle.transitions import set_job_status, set_task_status, settle_job


def request_pause(session: Session, job: Job, now: datetime, stop_running: bool = False) -> None:
    """Stop handing out the job's chunks; with ``stop_running`` the chunks rendering now are stopped too."""
    status = JobStatus(job.status)
    if status is JobStatus.PAUSED:
        return
    if status is JobStatus.PAUSE_REQUESTED:
        job.pause_now = job.pause_now or stop_running
        return
    if status not in (JobStatus.QUEUED, JobStatus.ACTIVE):
        raise Conflict(f"job {job.id} is {status.value}: only queued or active jobs can be paused")
    reason = "pause requested: stopping running chunks" if stop_running else "pause requested: running chunks finish"
    set_job_status(job, JobStatus.PAUSE_REQUESTED, now, reason)
    job.pause_now = stop_running
    settle_job(session, job, now)  # nothing running: paused at once


def resume(session: Session, job: Job, now: datetime) -> None:
    """Put a paused job's chunks back in the queue (or withdraw a pause that has not happened yet)."""
    status = JobStatus(job.status)
    job.pause_now = False
    if status in (JobStatus.QUEUED, JobStatus.ACTIVE):
        return
    if status is JobStatus.PAUSE_REQUESTED:
        set_job_status(job, JobStatus.ACTIVE, now, "pause withdrawn")
        return
    if status is not JobStatus.PAUSED:
        raise Conflict(f"job {job.id} is {status.value}: only paused jobs can be resumed")
    for task in session.scalars(select(Task).where(Task.job_id == job.id, Task.status == TaskStatus.PAUSED.value)):
        set_task_status(task, TaskStatus.QUEUED, now, "job resumed")
    set_job_status(job, JobStatus.QUEUED, now, "resumed")
    settle_job(session, job, now)  # every chunk may already be done


def retry(session: Session, job: Job, now: datetime) -> int:
    """Requeue the chunks that failed or were canceled, each with a fresh count of attempts; returns how many."""
    status = JobStatus(job.status)
    if status is JobStatus.CANCEL_REQUESTED:
        raise Conflict(f"job {job.id} is being canceled; retry it once it is canceled")
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
