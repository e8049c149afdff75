"""The scheduler's heartbeat: what each render slot and Ray node is doing, written to the database.

Only the scheduler process holds the worker pool, but every API replica serves ``/metrics``. So the dispatcher
loop calls ``Heartbeat.tick()``; every few seconds (with a little random spread) it writes one row per slot
(``workers``: idle, busy or lost) and one per Ray node (``nodes``: alive or lost). Readers treat the rows as a
lease: rows older than ``LEASE_S`` mean the scheduler stopped reporting, and everything it described counts as lost.

A node counts as lost when Ray reports it dead for a reason other than a planned shutdown, for ``LOST_WINDOW_S``
after the scheduler first saw it dead; after that it is forgotten, so one lost node does not alert forever (Ray
keeps dead nodes in its table for the life of the cluster).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from farm.clock import Clock
from farm.db.engine import Database
from farm.services.nodeview import NodeState, Snapshot, WorkerState, write

if TYPE_CHECKING:  # the pool imports Ray; API processes read heartbeats without it
    from scheduler.pool import WorkerPool

log = logging.getLogger(__name__)

INTERVAL_S = 5.0
LOST_WINDOW_S = 600.0
#: Ray's NodeDeathInfo reasons that are planned (``ray stop``, autoscaler scale-down of an idle node).
PLANNED_DEATHS = frozenset({1, 4})


class RayNodes:
    """Ray's node table, reduced to alive nodes and recently lost ones."""

    def __init__(
        self,
        list_nodes: Callable[[], list[dict[str, Any]]] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        lost_window_s: float = LOST_WINDOW_S,
    ) -> None:
        self._list_nodes = list_nodes or _ray_nodes
        self._monotonic = monotonic
        self._lost_window_s = lost_window_s
        self._dead_since: dict[str, float] = {}

    def __call__(self) -> list[NodeState]:
        now = self._monotonic()
        out = []
        for info in self._list_nodes():
            node_id = str(info.get("NodeID", ""))
            name = str(info.get("NodeManagerHostname") or info.get("NodeName") or node_id)
            if info.get("Alive", False):
                self._dead_since.pop(node_id, None)
                out.append(NodeState(node_id, name, True))
                continue
            if int(info.get("DeathReason", 0) or 0) in PLANNED_DEATHS:
                continue
            first_seen = self._dead_since.setdefault(node_id, now)
            if now - first_seen <= self._lost_window_s:
                out.append(NodeState(node_id, name, False))
        return out


def _ray_nodes() -> list[dict[str, Any]]:
    import ray

    if not ray.is_initialized():
        return []
    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    return nodes


def snapshot(pool: WorkerPool, nodes: Sequence[NodeState]) -> Snapshot:
    """The pool as it is now. Safe to call from another thread: it only reads slot attributes."""
    dead = {n.id for n in nodes if not n.alive}
    workers = []
    for slot in list(pool.slots):
        if slot.info.get("node_id") and slot.info.get("node_id") in dead:
            state = "lost"
        else:
            state = "idle" if slot.task_id is None else "busy"
        workers.append(WorkerState(slot.name, slot.node, state, slot.task_id))
    return Snapshot(tuple(workers), tuple(nodes))


class Heartbeat:
    """Called from the dispatcher loop; writes a snapshot when one is due. Never lets a failure stop dispatching."""

    def __init__(
        self,
        db: Database,
        pool: WorkerPool,
        clock: Clock,
        interval_s: float = INTERVAL_S,
        nodes: Callable[[], list[NodeState]] | None = None,
    ) -> None:
        self.db = db
        self.pool = pool
        self.clock = clock
        self.interval_s = interval_s
        self.nodes = nodes or RayNodes()
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
        snap = snapshot(self.pool, self.nodes())
        write(self.db, snap, self.clock.now())
        return snap
