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
from farm.db.models import BlocklistEntry, Job, Task, TaskAttempt, WorkerBeat
from farm.domain.frames import format_frames
from farm.domain.states import TASK_IN_FLIGHT
from farm.services.auth import Principal
from farm.services.nodeview import LEASE_S


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


@dataclass(frozen=True)
class SlotRow:
    """One row of the Workers page: the slot, its heartbeat's age, and what the viewer may know of its work."""

    view: WorkerView
    age_s: float | None
    #: The job's name when the viewer may see the job, else "" (another company's job shows as "busy").
    job_name: str
    chunk_frames: str
    blocked: tuple[tuple[str, str], ...]  # (job id, name) of each job the slot's node is blocked for; "" for others


@dataclass(frozen=True)
class Board:
    """The Workers page: its rows and whether they come from the scheduler's pool in this process."""

    rows: tuple[SlotRow, ...]
    live: bool


def with_heartbeats(session: Session, workers: list[WorkerView], now: datetime) -> list[WorkerView]:
    """The slots with the scheduler's heartbeat (``scheduler.heartbeat``) as their last beat when it is newer: an
    idle slot reports nothing of its own, but the scheduler vouches for it every few seconds. Slots that only the
    heartbeat knows (no pool in this process) are added, idle or busy as it says; lost ones keep their old beat."""
    beats = {b.name: b for b in session.scalars(select(WorkerBeat))}
    out = []
    for w in workers:
        beat = beats.pop(w.name, None)
        if beat is not None and beat.state != "lost" and (now - utc(beat.beat_at)).total_seconds() < LEASE_S:
            at = utc(beat.beat_at)
            if w.last_beat is None or at > w.last_beat:
                w = WorkerView(**{**w.__dict__, "last_beat": at})
        out.append(w)
    for beat in sorted(beats.values(), key=lambda b: b.name):
        alive = beat.state != "lost" and (now - utc(beat.beat_at)).total_seconds() < LEASE_S
        task = session.get(Task, beat.task_id) if beat.task_id else None
        out.append(
            WorkerView(
                name=beat.name,
                node=beat.node,
                resources={},
                task_id=beat.task_id,
                job_id=task.job_id if task else None,
                company_id=None,
                attempt=None,
                last_beat=utc(beat.beat_at) if alive or beat.state == "lost" else None,
            )
        )
    return out


def workers_board(session: Session, who: Principal, snapshot: Snapshot | None, now: datetime) -> Board:
    """The Workers page as ``who`` sees it: job names and chunk frames for their own jobs only."""
    workers = with_heartbeats(session, snapshot() if snapshot is not None else db_snapshot(session), now)
    blocked: dict[str, set[str]] = {w.name: set(w.blocked_jobs) for w in workers}
    by_node: dict[str, set[str]] = {}
    for node, job_id in session.execute(
        select(BlocklistEntry.node, BlocklistEntry.job_id).where(BlocklistEntry.blocked_at.is_not(None))
    ):
        by_node.setdefault(str(node), set()).add(str(job_id))
    for w in workers:
        blocked[w.name] |= by_node.get(w.node, set())
    job_ids = {w.job_id for w in workers if w.job_id} | {j for jobs in blocked.values() for j in jobs}
    jobs = (
        {
            job_id: (name, company)
            for job_id, name, company in session.execute(
                select(Job.id, Job.name, Job.company_id).where(Job.id.in_(job_ids))
            ).all()
        }
        if job_ids
        else {}
    )
    mine = {j: name for j, (name, company) in jobs.items() if who.is_platform_admin or company == who.company_id}
    task_ids = [w.task_id for w in workers if w.task_id and w.job_id in mine]
    frames = (
        {
            tid: format_frames(list(f))
            for tid, f in session.execute(select(Task.id, Task.frames).where(Task.id.in_(task_ids)))
        }
        if task_ids
        else {}
    )
    stamp = now.timestamp()
    rows = tuple(
        SlotRow(
            view=w,
            age_s=beat_age(w, stamp),
            job_name=mine.get(w.job_id or "", ""),
            chunk_frames=frames.get(w.task_id or "", ""),
            blocked=tuple((j, mine.get(j, "")) for j in sorted(blocked[w.name])),
        )
        for w in workers
    )
    return Board(rows=rows, live=snapshot is not None)
