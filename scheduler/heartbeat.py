"""The scheduler's heartbeat: what each render slot and Ray node is doing, written to the database.

Only the scheduler process holds the worker pool, but every API replica serves ``/metrics``. So the dispatcher
loop calls ``Heartbeat.tick()``; every few seconds (with a little random spread) it writes one row per slot
(``workers``: idle, busy or lost) and one per Ray node (``nodes``: alive or lost). Readers treat the rows as a
lease: rows older than ``LEASE_S`` mean the scheduler stopped reporting, and everything it described counts as lost.

Which nodes are alive or lost, and their names, are the node view's (``scheduler.nodes.NodeView``): the same
names and the same answer the dispatcher and the pool use.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from farm.clock import Clock
from farm.db.engine import Database
from farm.services.nodeview import NodeState, Snapshot, WorkerState, write
from scheduler.nodes import NodeView

if TYPE_CHECKING:  # the pool imports Ray; API processes read heartbeats without it
    from scheduler.pool import WorkerPool

log = logging.getLogger(__name__)

INTERVAL_S = 5.0


def snapshot(pool: WorkerPool, nodes: Sequence[NodeState]) -> Snapshot:
    """The pool as it is now. Safe to call from another thread: it only reads slot attributes."""
    dead = {n.id for n in nodes if not n.alive}
    workers = []
    for slot in list(pool.slots):
        node_id = slot.node_id or str(slot.info.get("node_id") or "")
        if node_id and node_id in dead:
            state = "lost"
        else:
            state = "idle" if slot.task_id is None else "busy"
        cpus, gpus = slot.resources.get("cpu", 0.0), slot.resources.get("gpu", 0.0)
        workers.append(WorkerState(slot.name, slot.node, state, slot.task_id, cpus, gpus))
    return Snapshot(tuple(workers), tuple(nodes))


class Heartbeat:
    """Called from the dispatcher loop; writes a snapshot when one is due. Never lets a failure stop dispatching."""

    def __init__(
        self,
        db: Database,
        pool: WorkerPool,
        clock: Clock,
        interval_s: float = INTERVAL_S,
        nodes: NodeView | None = None,
    ) -> None:
        self.db = db
        self.pool = pool
        self.clock = clock
        self.interval_s = interval_s
        self.nodes = nodes or NodeView()  # pass the scheduler's own view: one name and one answer per node
        self._next = 0.0

    def tick(self) -> None:
        """Write a heartbeat if the interval has passed."""
        now = self.clock.monotonic()
        if now < self._next:
            return
        # Spread of ±10 %, so schedulers restarted together do not beat in lockstep.
        self._next = now + self.interval_s * random.uniform(0.9, 1.1)
        try:
            self.beat()
        except Exception:
            log.warning("heartbeat not written; retrying in %.0fs", self.interval_s, exc_info=True)

    def beat(self) -> Snapshot:
        """Write a heartbeat now."""
        snap = snapshot(self.pool, self.nodes.states())
        write(self.db, snap, self.clock.now())
        return snap
