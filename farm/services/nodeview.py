"""The node view: what each render slot and Ray node is doing, as the scheduler last wrote it to the database.

The scheduler (``scheduler.heartbeat``) writes it; every API replica reads it for ``/metrics`` and the monitor. The
rows are a lease: rows older than ``LEASE_S`` mean the scheduler stopped reporting, and everything they described
counts as lost. No Ray here: node names and "alive" come from the scheduler's one reader of Ray's node table
(``scheduler.nodes.NodeView``), the same the dispatcher and the pool ask.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from farm.clock import utc
from farm.db.engine import Database
from farm.db.models import NodeBeat, WorkerBeat

LEASE_S = 30.0
WORKER_STATES = ("idle", "busy", "lost")
NODE_STATES = ("alive", "lost")


@dataclass(frozen=True)
class WorkerState:
    name: str
    node: str
    state: str  # one of WORKER_STATES
    task_id: str | None = None
    cpus: float = 0.0  # the slot's size (issue 15: resources in use per company)
    gpus: float = 0.0


@dataclass(frozen=True)
class NodeState:
    id: str
    name: str
    alive: bool


@dataclass(frozen=True)
class Snapshot:
    workers: tuple[WorkerState, ...] = ()
    nodes: tuple[NodeState, ...] = ()


def write(db: Database, snap: Snapshot, now: datetime) -> None:
    """Replace the heartbeat rows with ``snap`` (only the one scheduler writes them)."""
    with db.session() as s:
        s.execute(delete(WorkerBeat).where(WorkerBeat.name.not_in([w.name for w in snap.workers])))
        s.execute(delete(NodeBeat).where(NodeBeat.id.not_in([n.id for n in snap.nodes])))
        for w in snap.workers:
            s.merge(
                WorkerBeat(
                    name=w.name, node=w.node, state=w.state, task_id=w.task_id, beat_at=now, cpus=w.cpus, gpus=w.gpus
                )
            )
        for n in snap.nodes:
            s.merge(NodeBeat(id=n.id, name=n.name, alive=n.alive, beat_at=now))


def read(db: Database, now: datetime, lease_s: float = LEASE_S) -> Snapshot:
    """The last heartbeat; rows past their lease come back as lost."""
    expired = now - timedelta(seconds=lease_s)
    with db.session() as s:
        workers = tuple(
            WorkerState(
                w.name,
                w.node,
                w.state if utc(w.beat_at) >= expired else "lost",
                w.task_id,
                float(w.cpus or 0.0),
                float(w.gpus or 0.0),
            )
            for w in s.scalars(select(WorkerBeat).order_by(WorkerBeat.name))
        )
        nodes = tuple(
            NodeState(n.id, n.name, n.alive and utc(n.beat_at) >= expired)
            for n in s.scalars(select(NodeBeat).order_by(NodeBeat.id))
        )
    return Snapshot(workers, nodes)
