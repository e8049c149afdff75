"""Per-job node blocklist: a node that fails ``threshold`` chunks of one job gets no more chunks of that job.

Chunks count, not attempts: a chunk that fails three times on the only node counts once. Only node faults count
(Blender crashed, the lease expired, the worker died: ``farm.lifecycle.outcomes.Fault.NODE``); a scene error, a
store outage, a lost worker or a chunk stopped by pause/cancel says nothing about the node.
``farm unblock JOB [NODE]`` clears the count, so the node gets a fresh start. No Ray here: the API reads and
clears the list too.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from farm.db.models import BlocklistEntry, TaskAttempt

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 3
#: The reason of a job that failed because every node that could take it is blocklisted; unblocking a node of
#: such a job runs it again (``farm.lifecycle.control.unblock``).
NO_NODE_LEFT = "no node may render this job any more: "


def record_failure(
    session: Session,
    job_id: str,
    node: str,
    reason: str,
    now: datetime,
    threshold: int = DEFAULT_THRESHOLD,
    task_id: str | None = None,
    attempt: int | None = None,
) -> bool:
    """Count a failed chunk of the job on the node (a chunk that already failed there counts once); True when
    this failure blocks the node."""
    if not node:
        return False
    entry = session.get(BlocklistEntry, (job_id, node))
    if entry is None:
        entry = BlocklistEntry(job_id=job_id, node=node, failures=0, reason="", updated_at=now)
        session.add(entry)
    elif task_id is not None and _failed_there_before(session, task_id, node, attempt):
        entry.reason = reason  # the column keeps 2000 characters, and the reason's code
        entry.updated_at = now
        return False
    entry.failures += 1
    entry.reason = reason
    entry.updated_at = now
    if entry.blocked_at is None and entry.failures >= threshold:
        entry.blocked_at = now
        log.warning(
            "job %s: node %s blocklisted after %d failed chunk(s); last: %s", job_id, node, entry.failures, reason
        )
        return True
    return False


def _failed_there_before(session: Session, task_id: str, node: str, attempt: int | None) -> bool:
    """Whether an earlier attempt of the chunk already failed on the node by the node's fault."""
    query = select(TaskAttempt.id).where(
        TaskAttempt.task_id == task_id,
        TaskAttempt.node == node,
        TaskAttempt.status == "failed",
        TaskAttempt.fault == "node",
    )
    if attempt is not None:
        query = query.where(TaskAttempt.number < attempt)
    return session.scalar(query.limit(1)) is not None


def blocked_nodes(session: Session, job_id: str) -> set[str]:
    """Nodes that get no more chunks of the job."""
    return set(
        session.scalars(
            select(BlocklistEntry.node).where(BlocklistEntry.job_id == job_id, BlocklistEntry.blocked_at.is_not(None))
        )
    )


def entries(session: Session, job_id: str) -> list[BlocklistEntry]:
    """Every node that failed a chunk of the job, blocked ones first."""
    rows = session.scalars(select(BlocklistEntry).where(BlocklistEntry.job_id == job_id))
    return sorted(rows, key=lambda e: (e.blocked_at is None, e.node))


def unblock(session: Session, job_id: str, node: str | None = None) -> list[str]:
    """Forget the failures of the job on ``node`` (every node when None); returns the nodes that were blocked."""
    query = select(BlocklistEntry).where(BlocklistEntry.job_id == job_id)
    if node is not None:
        query = query.where(BlocklistEntry.node == node)
    was_blocked = sorted(e.node for e in session.scalars(query) if e.blocked_at is not None)
    stmt = delete(BlocklistEntry).where(BlocklistEntry.job_id == job_id)
    if node is not None:
        stmt = stmt.where(BlocklistEntry.node == node)
    session.execute(stmt)
    for name in was_blocked:
        log.info("job %s: node %s unblocked", job_id, name)
    return was_blocked
