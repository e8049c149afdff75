"""Ray's nodes, read in one place: the node view (``NodeView``) and the render slots that follow it (``NodeTracker``).

``NodeView`` is the only reader of Ray's node table (``ray.nodes()``, through ``list_ray_nodes``). The dispatcher
asks it whether a lost worker's node is gone, the pool whether a dead actor's node is still there, the heartbeat
which nodes to report (``/metrics``, the Workers page), and the tracker which nodes joined or left. So a node has
one name and one answer to "alive?" everywhere.

Naming: a node is named by its host (Ray's ``NodeManagerHostname``, else ``NodeName``, else the first 12
characters of its id); when a live node already has that name (several Ray nodes on one machine), the one seen
later is named ``host:node-manager-port``. Names are kept for the life of the scheduler: slot names, attempts,
blocklists and the heartbeat rows refer to them.

By default a node gets one slot per GPU (Ray ``num_gpus=1``; one core each when the node has a core to spare)
and one CPU slot that uses the rest of its cores: one Blender using every core renders faster than several
single-core ones (docs/benchmarks.md); ``FARM_CPU_SLOT_CORES`` splits the rest into slots of that many cores.
Slots are pinned to their node, so when the node leaves, its slots go with it and the dispatcher requeues what
they were rendering. With autoscaling (``scheduler.demand``) the tracker creates a node's slots only while the
pool has fewer slots than the queue wants, again on a node whose idle slots were released, and GPU nodes get no
CPU slot (a CPU chunk would keep a GPU node up).

A dead node counts as lost when Ray reports it dead for a reason other than a planned shutdown, for
``LOST_WINDOW_S`` after the view first saw it dead; after that it is forgotten, so one lost node does not alert
forever (Ray keeps dead nodes in its table for the life of the cluster).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from farm.services.nodeview import NodeState

if TYPE_CHECKING:  # the pool imports Ray; the view's pure parts are tested without it
    from scheduler.pool import Slot

log = logging.getLogger(__name__)

NodeLister = Callable[[], list[dict[str, Any]]]

SYNC_INTERVAL_S = 1.0
LOST_WINDOW_S = 600.0
#: Ray's NodeDeathInfo reasons that are planned (``ray stop``, autoscaler scale-down of an idle node).
PLANNED_DEATHS = frozenset({1, 4})


def list_ray_nodes() -> list[dict[str, Any]]:
    """Ray's node table (empty when this process has not joined Ray): the farm's only call of ``ray.nodes``."""
    import ray

    if not ray.is_initialized():
        return []
    return list(ray.nodes())  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class NodeInfo:
    """One row of Ray's node table, named by the view."""

    node_id: str
    name: str
    cpus: int
    gpus: int
    alive: bool = True
    planned_death: bool = False


class NodeView:
    """Ray's node table with the farm's names; safe to share between the dispatcher and API threads."""

    def __init__(
        self,
        list_nodes: NodeLister = list_ray_nodes,
        monotonic: Callable[[], float] = time.monotonic,
        lost_window_s: float = LOST_WINDOW_S,
    ) -> None:
        self.list_nodes = list_nodes
        self._monotonic = monotonic
        self._lost_window_s = lost_window_s
        self._lock = threading.Lock()
        self.names: dict[str, str] = {}  # every node ever seen, by Ray node id
        self.nodes: tuple[NodeInfo, ...] = ()  # as of the last read
        self._alive: frozenset[str] = frozenset()
        self._dead_since: dict[str, float] = {}

    def refresh(self) -> tuple[NodeInfo, ...]:
        """Read Ray's node table now; raises what the lister raises (the last view stays)."""
        raw = self.list_nodes()
        now = self._monotonic()
        with self._lock:
            alive = [n for n in raw if n.get("Alive")]
            dead = [n for n in raw if not n.get("Alive")]
            taken: set[str] = set()
            infos: list[NodeInfo] = []
            for row in alive + dead:  # live nodes are named first: a dead one never takes a live one's name
                info = self._info(row, taken)
                if info.alive:
                    taken.add(info.name)
                    self._dead_since.pop(info.node_id, None)
                else:
                    self._dead_since.setdefault(info.node_id, now)
                infos.append(info)
            self.nodes = tuple(infos)
            self._alive = frozenset(n.node_id for n in infos if n.alive)
        return self.nodes

    def _info(self, row: dict[str, Any], taken: set[str]) -> NodeInfo:
        node_id = str(row.get("NodeID", ""))
        name = self.names.get(node_id)
        if name is None:
            host = str(row.get("NodeManagerHostname") or row.get("NodeName") or node_id[:12])
            name = host if host not in taken else f"{host}:{row.get('NodeManagerPort', node_id[:8])}"
            self.names[node_id] = name
        resources = row.get("Resources") or {}
        return NodeInfo(
            node_id=node_id,
            name=name,
            cpus=int(float(resources.get("CPU", 0))),
            gpus=int(float(resources.get("GPU", 0))),
            alive=bool(row.get("Alive")),
            planned_death=int(row.get("DeathReason", 0) or 0) in PLANNED_DEATHS,
        )

    def alive(self, node_id: str, fresh: bool = False) -> bool:
        """Whether the node is alive: as of the last read, or with ``fresh`` as Ray says now (the last read
        when Ray cannot be asked)."""
        if fresh:
            try:
                self.refresh()
            except Exception:
                log.warning("cannot list Ray nodes; answering from the last view", exc_info=True)
        return node_id in self._alive

    def states(self) -> list[NodeState]:
        """Read the table now and report alive nodes and recently lost ones (the heartbeat's node rows)."""
        nodes = self.refresh()
        now = self._monotonic()
        out = []
        for info in nodes:
            if info.alive:
                out.append(NodeState(info.node_id, info.name, True))
            elif not info.planned_death and now - self._dead_since[info.node_id] <= self._lost_window_s:
                out.append(NodeState(info.node_id, info.name, False))
        return out


def slot_layout(
    cpus: int, gpus: int, cpu_slot_cores: int = 0, cpu_on_gpu_nodes: bool = True
) -> list[tuple[str, dict[str, float]]]:
    """``(suffix, resources)`` of the slots of a node with ``cpus`` cores and ``gpus`` GPUs; ``cpu_slot_cores``
    0: one CPU slot with the cores left, else as many slots of that many cores as fit."""
    gpu_cores = 1 if gpus and cpus >= gpus + 1 else 0  # a core to feed each GPU, if one is left for the CPU slot
    layout: list[tuple[str, dict[str, float]]] = [
        (f"gpu-{i}", {"gpu": 1.0, "cpu": float(gpu_cores)}) for i in range(gpus)
    ]
    rest = cpus - gpus * gpu_cores
    if gpus and not cpu_on_gpu_nodes:
        return layout
    if cpu_slot_cores <= 0:
        if rest >= 1:
            layout.append(("cpu", {"cpu": float(rest)}))
        return layout
    count = rest // cpu_slot_cores
    names = ["cpu"] if count == 1 else [f"cpu-{i}" for i in range(count)]
    layout.extend((name, {"cpu": float(cpu_slot_cores)}) for name in names)
    return layout


def layout_with(
    cpu_slot_cores: int, cpu_on_gpu_nodes: bool
) -> Callable[[int, int], list[tuple[str, dict[str, float]]]]:
    """``slot_layout`` with the farm's settings, for the tracker."""
    return lambda cpus, gpus: slot_layout(cpus, gpus, cpu_slot_cores, cpu_on_gpu_nodes)


class SlotPool(Protocol):
    """What the tracker needs of ``scheduler.pool.WorkerPool``."""

    slots: list[Slot]
    node_alive: Callable[[str], bool]

    def add_slot(self, name: str, resources: dict[str, float], node: str = "", node_id: str = "") -> Slot: ...


class NodeTracker:
    """Adds the slots of nodes that join and hands back the slots of nodes that left; call ``sync`` often."""

    def __init__(
        self,
        pool: SlotPool,
        view: NodeView | None = None,
        interval_s: float = SYNC_INTERVAL_S,
        layout: Callable[[int, int], list[tuple[str, dict[str, float]]]] = slot_layout,
        monotonic: Callable[[], float] = time.monotonic,
        wanted: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        self.pool = pool
        self.wanted = wanted  # slots per pool the queue wants (``scheduler.demand``); None: every node's slots
        self.view = view or NodeView()
        self.interval_s = interval_s
        self.layout = layout
        self._monotonic = monotonic
        self.nodes: dict[str, NodeInfo] = {}  # alive nodes with slots, by Ray node id
        self._next_sync = float("-inf")
        pool.node_alive = self.view.alive

    def alive(self, node_id: str) -> bool:
        """Whether the node was alive at the view's last read."""
        return self.view.alive(node_id)

    def sync(self, force: bool = False) -> list[Slot]:
        """Look at Ray's node table (at most once per interval): add slots for new nodes, return the slots of
        nodes that left (the caller settles their chunks and removes them)."""
        now = self._monotonic()
        if not force and now < self._next_sync:
            return []
        self._next_sync = now + self.interval_s
        try:
            alive = {info.node_id: info for info in self.view.refresh() if info.alive}
        except Exception:
            log.warning("cannot list Ray nodes; keeping the last view", exc_info=True)
            return []
        gone: list[Slot] = []
        for node_id in [n for n in self.nodes if n not in alive]:
            info = self.nodes.pop(node_id)
            slots = [slot for slot in self.pool.slots if slot.node_id == node_id]
            log.warning("node %s left the cluster; %d slot(s) go with it", info.name, len(slots))
            gone.extend(slots)
        for node_id, info in alive.items():
            if node_id not in self.nodes:
                self.nodes[node_id] = info
                log.info("node %s joined: %d CPU(s), %d GPU(s)", info.name, info.cpus, info.gpus)
        self._fill()
        return gone

    def _fill(self) -> None:
        """Create the missing slots of the live nodes, up to what the queue wants per pool (when told)."""
        wanted = self.wanted() if self.wanted is not None else None
        present = {slot.name for slot in self.pool.slots}
        have = {"cpu": 0, "gpu": 0}
        for slot in self.pool.slots:
            have["gpu" if slot.resources.get("gpu", 0.0) > 0 else "cpu"] += 1
        for info in sorted(self.nodes.values(), key=lambda n: n.name):
            for suffix, slot_resources in self.layout(info.cpus, info.gpus):
                name = f"{info.name}/{suffix}"
                kind = "gpu" if slot_resources.get("gpu", 0.0) > 0 else "cpu"
                if name in present or (wanted is not None and have[kind] >= wanted.get(kind, 0)):
                    continue
                self.pool.add_slot(name, slot_resources, node=info.name, node_id=info.node_id)
                have[kind] += 1
                log.info("slot %s added", name)
