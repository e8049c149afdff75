"""Claiming a chunk before it is handed to a slot, safely when several processes share a PostgreSQL database.

The dispatcher reads its candidates without locks (the fair-share policy reads a lot). Before it hands one out it
claims it: lock the job row, then the task row, both with ``FOR UPDATE SKIP LOCKED``, re-reading them. The job
lock orders the claim against an API replica's cancel (which locks the job too): the cancel runs before or after,
never in between. A row someone else holds is skipped rather than waited for, so the scheduler never blocks on an
API request and two claimers can never deadlock; a skipped chunk is simply offered again on the next pass. A task
already dispatched, or a job canceled meanwhile, fails the re-check and is skipped too.

On SQLite (one writer at a time) a dispatch pass holds the write lock: taken before it reads when it applies
reports anyway, else at its first claim, which makes every row read so far be read again; after that no other
process can change what the pass decides on until it commits.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from farm.db.engine import is_postgresql
from farm.db.models import Job, Task
from farm.domain.states import JOB_DISPATCHABLE, TASK_RUNNABLE


def hold_sqlite(session: Session) -> bool:
    """On SQLite, take the one write lock for the rest of the session (once): whatever it reads afterwards is
    current until it commits, so a pass's claims need no re-reading. True when it did (SQLite)."""
    if is_postgresql(session.get_bind()):
        return False
    if not session.info.get("sqlite_write_lock"):
        session.execute(update(Job).where(Job.id == "").values(status=Job.status))
        session.info["sqlite_write_lock"] = True
    return True


def claim(session: Session, job: Job, task: Task) -> bool:
    """True when ``task`` of ``job`` may be dispatched now; both objects are refreshed from the locked rows."""
    if not is_postgresql(session.get_bind()) and not session.info.get("sqlite_write_lock"):
        # The candidates were read before this session wrote anything: take the lock now and let every row read
        # so far be read again on its next use (a pause or cancel the API committed meanwhile is seen).
        session.flush()  # what the session changed so far is kept, not expired
        hold_sqlite(session)
        session.expire_all()
    if session.info.get("sqlite_write_lock"):
        # Read after the session took SQLite's write lock (``hold_sqlite``): the rows are current.
        return job.status in JOB_DISPATCHABLE and task.status in TASK_RUNNABLE
    locked_job = session.scalar(
        select(Job)
        .where(Job.id == job.id, Job.status.in_([s.value for s in JOB_DISPATCHABLE]))
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    if locked_job is None:
        return False
    locked_task = session.scalar(
        select(Task)
        .where(Task.id == task.id, Task.status.in_([s.value for s in TASK_RUNNABLE]))
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return locked_task is not None
