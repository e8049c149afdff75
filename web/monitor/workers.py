"""The Workers page's data: a read-only snapshot of the render slots.

In the embedded farm the scheduler's pool lives in this process: ``pool_snapshot`` copies what each slot is doing
(the dispatcher thread owns the slots; reading a few attributes without its lock can at worst show a value one
step old). Without an in-process pool (API replicas in cluster mode) ``db_snapshot`` shows the attempts in flight.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from farm.clock import utc
from farm.db.models import Job, Task, TaskAttempt
from farm.domain.states import TASK_IN_FLIGHT


@dataclass(frozen=True)
class WorkerView:
    """One render slot as the Workers page shows it."""

    name: str
    node: str
    resources: dict[str, float]
    task_id: str | None
    job_id: str | None
    company_id: str | None
    attempt: int | None
    last_beat: datetime | None
    blocked_jobs: tuple[str, ...] = ()

    @property
    def busy(self) -> bool:
        return self.task_id is not None


#: What ``app.state.worker_snapshot`` holds when the process has a pool.
Snapshot = Callable[[], list[WorkerView]]


def _blocklists(dispatcher: Any) -> dict[str, set[str]]:
    """node → job ids that no longer get chunks on it, from whichever blocklist the dispatcher keeps."""
    raw = getattr(dispatcher, "blocklist", None) or getattr(dispatcher, "blocklists", None)
    out: dict[str, set[str]] = {}
    if isinstance(raw, dict):
        for key, value in list(raw.items()):
            if isinstance(key, tuple) and len(key) == 2:  # {(job, node): ...}
                out.setdefault(str(key[1]), set()).add(str(key[0]))
            elif isinstance(value, (set, frozenset, list, tuple)):  # {job: {node, ...}}
                for node in value:
                    out.setdefault(str(node), set()).add(str(key))
    return out


def pool_snapshot(pool: Any, dispatcher: Any = None) -> list[WorkerView]:
    """Copy the live state of every slot of a ``scheduler.pool.WorkerPool``."""
    if pool is None:
        return []
    blocked = _blocklists(dispatcher)
    views = []
    for slot in list(getattr(pool, "slots", [])):
        beat = float(getattr(slot, "last_beat", 0.0) or 0.0)
        node = str(getattr(slot, "node", "") or "")
        views.append(
            WorkerView(
                name=str(slot.name),
                node=node,
                resources=dict(getattr(slot, "resources", {})),
                task_id=getattr(slot, "task_id", None),
                job_id=getattr(slot, "job_id", None),
                company_id=None,
                attempt=getattr(slot, "attempt", None) if getattr(slot, "task_id", None) else None,
                last_beat=datetime.fromtimestamp(beat, UTC) if beat > 0 else None,
                blocked_jobs=tuple(sorted(blocked.get(node, set()) | blocked.get(str(slot.name), set()))),
            )
        )
    return views


def db_snapshot(session: Session) -> list[WorkerView]:
    """Slots known from the attempts in flight (no pool in this process)."""
    rows = session.execute(
        select(TaskAttempt, Task, Job.company_id)
        .join(Task, Task.id == TaskAttempt.task_id)
        .join(Job, Job.id == Task.job_id)
        .where(Task.status.in_([s.value for s in TASK_IN_FLIGHT]), TaskAttempt.ended_at.is_(None))
        .order_by(TaskAttempt.worker)
    ).all()
    return [
        WorkerView(
            name=attempt.worker or attempt.node or "?",
            node=attempt.node,
            resources={},
            task_id=task.id,
            job_id=task.job_id,
            company_id=str(company_id),
            attempt=attempt.number,
            last_beat=utc(task.updated_at),
        )
        for attempt, task, company_id in rows
    ]


def beat_age(view: WorkerView, now: float | None = None) -> float | None:
    """Seconds since the slot's last heartbeat."""
    if view.last_beat is None:
        return None
    return max(0.0, (now if now is not None else time.time()) - view.last_beat.timestamp())
