"""Pause, resume, retry and unblock: the API records the wish, the scheduler carries out what needs a worker.

Every status change goes through ``farm.lifecycle.transitions``. Pausing marks the job ``pause-requested``; the
scheduler stops handing out its chunks, lets the running ones finish (or stops them at once with ``now``) and then
the job is ``paused``. Resuming puts the paused chunks back in the queue. Retrying requeues chunks that failed or
were canceled, with a fresh count of attempts.

One chunk (issue 16): requeueing renders it again, cancelling leaves it out. A chunk that is rendering is moved
at once and its attempt ended here; the scheduler then stops the render its slot still holds (a slot whose
attempt is no longer its chunk's current one), and the attempt's late report changes only that attempt's row.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from farm.clock import utc
from farm.contract import BlockedNode, Blocklist
from farm.db.models import Job, Task, TaskAttempt
from farm.domain import reasons
from farm.domain.attempts import Outcome
from farm.domain.states import JOB_TERMINAL, TASK_IN_FLIGHT, JobStatus, TaskStatus
from farm.errors import Conflict, NotFound
from farm.lifecycle import actions, blocklist
from farm.lifecycle.actions import Action, ChunkAction
from farm.lifecycle.transitions import set_job_status, set_task_status, settle_job

log = logging.getLogger(__name__)


def request_cancel(session: Session, job: Job, now: datetime, reason: str = "") -> None:
    """Record the wish; queued chunks are canceled now, running ones by the scheduler."""
    reason = reason or reasons.make("canceled")
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
    reason = reasons.make("pause_stopping" if stop_running else "pause_finishing")
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
        set_job_status(job, JobStatus.ACTIVE, now, reasons.make("pause_withdrawn"))
        return
    for task in session.scalars(select(Task).where(Task.job_id == job.id, Task.status == TaskStatus.PAUSED.value)):
        set_task_status(task, TaskStatus.QUEUED, now, "job resumed")
    set_job_status(job, JobStatus.QUEUED, now, reasons.make("resumed"))
    settle_job(session, job, now)  # every chunk may already be done


def retry(session: Session, job: Job, now: datetime) -> int:
    """Requeue the chunks that failed or were canceled, each with a fresh count of attempts; returns how many."""
    status = JobStatus(job.status)
    actions.check(Action.RETRY, job.id, status)
    again = (TaskStatus.FAILED.value, TaskStatus.CANCELED.value)
    tasks = list(session.scalars(select(Task).where(Task.job_id == job.id, Task.status.in_(again))))
    if not tasks:
        raise Conflict(
            f"job {job.id} has no failed or canceled chunks to retry", code="nothing_to_retry", params={"job": job.id}
        )
    if status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED):
        set_job_status(job, JobStatus.REQUEUEING, now, reasons.make("retrying", chunks=len(tasks)))
        set_job_status(job, JobStatus.QUEUED, now, reasons.make("retrying", chunks=len(tasks)))
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
                reason_code=e.reason_code,
                reason_params=e.reason_params,
            )
            for e in blocklist.entries(session, job.id)
        ],
    )


def unblock(session: Session, job: Job, node: str | None, now: datetime) -> list[str]:
    """Give the node (every node when None) a fresh start on the job; returns the nodes that were blocked."""
    if node is not None and node not in {e.node for e in blocklist.entries(session, job.id)}:
        raise NotFound(
            f"node {node!r} has no failed chunks of job {job.id}; `farm status {job.id}` lists them",
            code="node_not_listed",
            params={"node": node, "job": job.id},
        )
    cleared = blocklist.unblock(session, job.id, node)
    if cleared and JobStatus(job.status) is JobStatus.FAILED and job.status_reason.startswith(blocklist.NO_NODE_LEFT):
        # The job failed only because no node could take it: with a node back, it runs again.
        retry(session, job, now)
        job.status_reason = reasons.make("unblocked_running", nodes=", ".join(cleared))
    elif cleared and JobStatus(job.status) in (JobStatus.QUEUED, JobStatus.ACTIVE):
        job.status_reason = reasons.make("unblocked", nodes=", ".join(cleared))
    return cleared


# ---- issue 16: one chunk, and the job's priority --------------------------------------------------------------
def chunk_of(session: Session, job: Job, ref: str) -> Task:
    """The job's chunk named by its id or by its index (``3``); ``NotFound`` saying how chunks are named."""
    query = select(Task).where(Task.job_id == job.id)
    ref = ref.strip()
    task = session.scalar(
        query.where(Task.index == int(ref)) if ref.isdigit() and len(ref) < 10 else query.where(Task.id == ref)
    )
    if task is None:
        raise NotFound(
            f"job {job.id} has no chunk {ref!r}: name one by its index (0 to {job.tasks_total - 1}) or its id, "
            f"as `farm status {job.id}` lists them",
            code="no_such_chunk",
            params={"job": job.id, "chunk": ref, "last": job.tasks_total - 1},
        )
    return task


def _end_attempt(session: Session, task: Task, now: datetime, reason: str) -> None:
    """End the chunk's running attempt here (the scheduler stops its render): its row says why."""
    attempt = session.scalar(
        select(TaskAttempt).where(TaskAttempt.task_id == task.id, TaskAttempt.number == task.attempts)
    )
    if attempt is not None and attempt.ended_at is None:
        attempt.status, attempt.ended_at, attempt.reason = Outcome.CANCELED.value, now, reason


def requeue_chunk(session: Session, job: Job, task: Task, now: datetime) -> bool:
    """Render the chunk again with a fresh count of attempts: a rendering one is stopped first, a finished one
    keeps its stored frames until the new ones replace them; a finished job is queued again. True if it changed."""
    job_status, status = JobStatus(job.status), TaskStatus(task.status)
    if not actions.check_chunk(ChunkAction.REQUEUE, job.id, job_status, task.index, status):
        return False
    why = reasons.make("chunk_requeued", chunk=task.index)
    if status in TASK_IN_FLIGHT:
        _end_attempt(session, task, now, why)
    if job_status in JOB_TERMINAL:
        set_job_status(job, JobStatus.REQUEUEING, now, why)
        set_job_status(job, JobStatus.QUEUED, now, why)
    task.failures = 0
    set_task_status(task, TaskStatus.QUEUED, now, why, job)
    if job_status is JobStatus.PAUSED:
        set_task_status(task, TaskStatus.PAUSED, now, "job paused", job)
    settle_job(session, job, now)  # a pause waiting for this chunk is done now
    return True


def cancel_chunk(session: Session, job: Job, task: Task, now: datetime) -> bool:
    """Leave the chunk out: a rendering one is stopped, the rest of the job goes on; once every other chunk is
    over the job ends canceled, saying how many chunks were left out (``settle_job``). True if it changed."""
    job_status, status = JobStatus(job.status), TaskStatus(task.status)
    if not actions.check_chunk(ChunkAction.CANCEL, job.id, job_status, task.index, status):
        return False
    why = reasons.make("chunk_canceled", chunk=task.index)
    if status in TASK_IN_FLIGHT:
        _end_attempt(session, task, now, why)
    set_task_status(task, TaskStatus.CANCELED, now, why, job)
    settle_job(session, job, now)
    return True


def set_priority(session: Session, job: Job, priority: int, now: datetime) -> bool:
    """Change the job's priority (the scheduler orders by it on its next pass); True if it changed."""
    del session, now
    actions.check(Action.PRIORITY, job.id, JobStatus(job.status))
    if job.priority == priority:
        return False
    log.info("job %s: priority %d -> %d", job.id, job.priority, priority)
    job.priority = priority
    return True
