"""Following Ray nodes as they join and leave (cluster mode): each node gets render slots from its resources.

By default a node gets one slot per GPU (Ray ``num_gpus=1``; one core each when the node has a core to spare)
and one CPU slot that uses the rest of its cores: one Blender using every core renders faster than several
single-core ones (docs/benchmarks.md). Slots are pinned to their node, so when the node leaves, its slots go
with it and the dispatcher requeues what they were rendering.

A node is named by its host name; when two live nodes share one (several Ray nodes on one machine), the one seen
later is named ``host:node-manager-port``. Names are kept for the life of the scheduler: the blocklist and
the attempts refer to them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scheduler.pool import Slot, WorkerPool

log = logging.getLogger(__name__)

NodeLister = Callable[[], list[dict[str, Any]]]

SYNC_INTERVAL_S = 1.0


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    name: str
    cpus: int
    gpus: int


def slot_layout(cpus: int, gpus: int) -> list[tuple[str, dict[str, float]]]:
    """``(suffix, resources)`` of the slots of a node with ``cpus`` cores and ``gpus`` GPUs."""
    gpu_cores = 1 if gpus and cpus >= gpus + 1 else 0  # a core to feed each GPU, if one is left for the CPU slot
    layout: list[tuple[str, dict[str, float]]] = [
        (f"gpu-{i}", {"gpu": 1.0, "cpu": float(gpu_cores)}) for i in range(gpus)
    ]
    rest = cpus - gpus * gpu_cores
    if rest >= 1:
        layout.append(("cpu", {"cpu": float(rest)}))
    return layout


def _ray_nodes() -> list[dict[str, Any]]:
    import ray

    return list(ray.nodes())  # type: ignore[no-untyped-call]


class NodeTracker:
    """Adds the slots of nodes that join and hands back the slots of nodes that left; call ``sync`` often."""

    def __init__(
        self,
        pool: WorkerPool,
        list_nodes: NodeLister = _ray_nodes,
        interval_s: float = SYNC_INTERVAL_S,
        layout: Callable[[int, int], list[tuple[str, dict[str, float]]]] = slot_layout,
    ) -> None:
        self.pool = pool
        self.list_nodes = list_nodes
        self.interval_s = interval_s
        self.layout = layout
        self.nodes: dict[str, NodeInfo] = {}  # alive nodes with slots, by Ray node id
        self.names: dict[str, str] = {}  # every node ever seen
        self._next_sync = 0.0
        pool.node_alive = self.alive

    def alive(self, node_id: str) -> bool:
        """Whether the node was alive at the last sync."""
        return node_id in self.nodes

    def sync(self, force: bool = False) -> list[Slot]:
        """Look at Ray's node table (at most once per interval): add slots for new nodes, return the slots of
        nodes that left (the caller settles their chunks and removes them)."""
        now = time.monotonic()
        if not force and now < self._next_sync:
            return []
        self._next_sync = now + self.interval_s
        try:
            raw = self.list_nodes()
        except Exception:
            log.warning("cannot list Ray nodes; keeping the last view", exc_info=True)
            return []
        alive = {str(n["NodeID"]): n for n in raw if n.get("Alive")}
        gone: list[Slot] = []
        for node_id in [n for n in self.nodes if n not in alive]:
            info = self.nodes.pop(node_id)
            slots = [slot for slot in self.pool.slots if slot.node_id == node_id]
            log.warning("node %s left the cluster; %d slot(s) go with it", info.name, len(slots))
            gone.extend(slots)
        for node_id, raw_node in alive.items():
            if node_id not in self.nodes:
                self._join(node_id, raw_node, alive)
        return gone

    def _name(self, node_id: str, raw: dict[str, Any], alive: dict[str, dict[str, Any]]) -> str:
        if node_id in self.names:
            return self.names[node_id]
        host = str(raw.get("NodeManagerHostname") or raw.get("NodeName") or node_id[:12])
        taken = {self.names[n] for n in alive if n in self.names}
        name = host if host not in taken else f"{host}:{raw.get('NodeManagerPort', node_id[:8])}"
        self.names[node_id] = name
        return name

    def _join(self, node_id: str, raw: dict[str, Any], alive: dict[str, dict[str, Any]]) -> None:
        resources = raw.get("Resources") or {}
        info = NodeInfo(
            node_id=node_id,
            name=self._name(node_id, raw, alive),
            cpus=int(float(resources.get("CPU", 0))),
            gpus=int(float(resources.get("GPU", 0))),
        )
        self.nodes[node_id] = info
        layout = self.layout(info.cpus, info.gpus)
        for suffix, slot_resources in layout:
            self.pool.add_slot(f"{info.name}/{suffix}", slot_resources, node=info.name, node_id=node_id)
        log.info("node %s joined: %d CPU(s), %d GPU(s) -> %d slot(s)", info.name, info.cpus, info.gpus, len(layout))
