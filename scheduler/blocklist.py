"""Per-job node blocklist: a node that fails ``threshold`` chunks of one job gets no more chunks of that job.

Only failed attempts count (Blender crashed, a frame errored, the lease expired); a lost worker or a chunk
stopped by pause/cancel says nothing about the node. ``farm unblock JOB [NODE]`` clears the count, so the node
gets a fresh start. No Ray here: the API reads and clears the list too.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from farm.db.models import BlocklistEntry

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 3


def record_failure(
    session: Session, job_id: str, node: str, reason: str, now: datetime, threshold: int = DEFAULT_THRESHOLD
) -> bool:
    """Count one failed chunk of the job on the node; True when this failure blocks the node."""
    if not node:
        return False
    entry = session.get(BlocklistEntry, (job_id, node))
    if entry is None:
        entry = BlocklistEntry(job_id=job_id, node=node, failures=0, reason="", updated_at=now)
        session.add(entry)
    entry.failures += 1
    entry.reason = reason[:2000]
    entry.updated_at = now
    if entry.blocked_at is None and entry.failures >= threshold:
        entry.blocked_at = now
        log.warning(
            "job %s: node %s blocklisted after %d failed chunk(s); last: %s", job_id, node, entry.failures, reason
        )
        return True
    return False


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
