"""Render slots: one Ray worker actor each, created with the slot's resources.

In the embedded mode the slots live on the local node and are warmed all at once at start. In cluster mode
``scheduler.nodes`` adds the slots of each Ray node as it joins, pinned to that node; they warm in the background
and take work once warm. A slot whose node has left is removed rather than replaced. With autoscaling
(``scheduler.demand``) a slot idle for longer than the idle timeout is released, so its node can scale down.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from workers.actor import RenderWorker, WorkerConfig

log = logging.getLogger(__name__)

ConfigFactory = Callable[[str, dict[str, float]], WorkerConfig]


@dataclass
class Slot:
    """One render slot and what it is doing; only the dispatcher thread touches it."""

    name: str
    resources: dict[str, float]
    actor: Any
    node: str = ""
    node_id: str = ""  # the Ray node the actor is pinned to (cluster mode); empty: wherever Ray put it
    task_id: str | None = None
    job_id: str | None = None
    attempt: int = 0
    render_ref: Any = None
    poll_ref: Any = None
    poll_sent_at: float = 0.0
    last_beat: float = 0.0
    cancel_sent: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    ready: bool = True  # False until the actor answered ``warm`` (slots added while the scheduler runs)
    warm_ref: Any = None
    lease_renewed: float = 0.0  # scheduler's monotonic time when the worker last showed progress
    lease_for: tuple[str, int] | None = None  # the (task, attempt) the lease belongs to
    kill_reason: str = ""  # set when the scheduler stops the attempt as a failure (lease expired)
    kill_sent_at: float = 0.0
    running: bool = False  # its chunk is marked running (the first poll of the attempt said so)
    idle_since: float = field(default_factory=time.monotonic)  # when it last became free (autoscaling)
    # A bundle (``scheduler.bundles``): every (task, attempt) of the call being rendered, in order; ``task_id`` and
    # ``attempt`` are the one the worker is on (polls say when it moves on), ``stopping`` those told to stop.
    call: list[tuple[str, int]] = field(default_factory=list)
    stopping: set[str] = field(default_factory=set)
    kill_for: tuple[str, int] | None = None  # the (task, attempt) whose lease expired
    bundles: bool = True  # False once a bundle call failed without the actor dying (a worker of older code)

    @property
    def queued(self) -> list[tuple[str, int]]:
        """The chunks of the call after the one the worker is on."""
        if self.task_id is None:
            return []
        current = (self.task_id, self.attempt)
        return self.call[self.call.index(current) + 1 :] if current in self.call else []

    def advance(self, task_id: str) -> bool:
        """The worker began a later chunk of its bundle: it becomes the slot's current one. False if ``task_id`` is
        not a chunk of the call still to come."""
        for queued_task, attempt in self.queued:
            if queued_task == task_id:
                self.task_id, self.attempt = queued_task, attempt
                self.running = False
                self.cancel_sent = queued_task in self.stopping
                return True
        return False

    @property
    def idle(self) -> bool:
        return self.task_id is None

    @property
    def gpus(self) -> float:
        return self.resources.get("gpu", 0.0)

    @property
    def pool(self) -> str:
        """``gpu`` for a slot with a GPU, else ``cpu``."""
        return "gpu" if self.gpus > 0 else "cpu"

    def release(self) -> None:
        self.task_id = self.job_id = None
        self.render_ref = self.poll_ref = None
        self.cancel_sent = False
        self.kill_reason = ""
        self.kill_sent_at = 0.0
        self.kill_for = None
        self.running = False
        self.call, self.stopping = [], set()
        self.idle_since = time.monotonic()


def actor_options(resources: dict[str, float], node_id: str = "") -> dict[str, Any]:
    """Ray options of a slot's actor: its cores and GPUs (Ray then sets ``CUDA_VISIBLE_DEVICES`` to the GPUs it
    assigned, which the Blender child inherits), and, for a slot of a known node, hard affinity to that node.
    ``bench/gpu_ray_check.py`` checks on a GPU machine what a child started under these options sees."""
    options: dict[str, Any] = {
        "num_cpus": resources.get("cpu", 0.0),
        "num_gpus": resources.get("gpu", 0.0),
        "max_concurrency": 4,  # render runs in one thread; poll and cancel must get through meanwhile
        "max_restarts": 0,
    }
    if node_id:
        # Hard affinity: the slot is this node's; if the node goes, the actor dies with it.
        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id, soft=False)
    return options


class WorkerPool:
    """Creates, replaces and removes worker actors."""

    def __init__(self, make_config: ConfigFactory) -> None:
        self.make_config = make_config
        self.slots: list[Slot] = []
        # Told by ``scheduler.nodes`` in cluster mode; a slot on a node that is gone is not replaced.
        self.node_alive: Callable[[str], bool] = lambda _node_id: True

    def _spawn(self, name: str, resources: dict[str, float], node: str = "", node_id: str = "") -> Any:
        config = self.make_config(name, resources)
        if node:
            config = dataclasses.replace(config, node=node)
        return ray.remote(RenderWorker).options(**actor_options(resources, node_id)).remote(config)

    def add_slot(self, name: str, resources: dict[str, float], node: str = "", node_id: str = "") -> Slot:
        """Create the actor for a new slot; one pinned to a node warms in the background (see ``poll_warm``)."""
        slot = Slot(
            name=name,
            resources=dict(resources),
            actor=self._spawn(name, resources, node, node_id),
            node=node,
            node_id=node_id,
        )
        if node_id:
            slot.ready, slot.warm_ref = False, slot.actor.warm.remote()
        self.slots.append(slot)
        return slot

    def replace(self, slot: Slot) -> bool:
        """A dead actor is replaced by a fresh one with the same resources; False when the slot's node is
        gone, in which case the slot is removed."""
        self._kill(slot)
        slot.release()
        slot.info = {}
        if slot.node_id and not self.node_alive(slot.node_id):
            self.remove(slot)
            return False
        slot.actor = self._spawn(slot.name, slot.resources, slot.node, slot.node_id)
        if slot.node_id:
            slot.ready, slot.warm_ref = False, slot.actor.warm.remote()
        return True

    def remove(self, slot: Slot) -> None:
        """Drop the slot (its node left); the caller has already settled its chunk."""
        self._kill(slot)
        if slot in self.slots:
            self.slots.remove(slot)
            log.info("slot %s removed", slot.name)

    @staticmethod
    def _kill(slot: Slot) -> None:
        try:
            ray.kill(slot.actor)
        except Exception:
            log.debug("actor of %s already gone", slot.name)

    def warm(self, timeout: float = 120.0) -> None:
        """Start Blender in every slot and learn where each runs."""
        infos = ray.get([slot.actor.warm.remote() for slot in self.slots], timeout=timeout)
        for slot, info in zip(self.slots, infos, strict=True):
            self._learn(slot, info)

    def poll_warm(self) -> bool:
        """Mark the slots whose actor finished warming as ready; replace those that failed. True if any."""
        pending = [slot for slot in self.slots if slot.warm_ref is not None]
        if not pending:
            return False
        ready, _ = ray.wait([slot.warm_ref for slot in pending], num_returns=len(pending), timeout=0)
        done = set(ready)
        changed = False
        for slot in pending:
            if slot.warm_ref not in done:
                continue
            ref, slot.warm_ref = slot.warm_ref, None
            changed = True
            try:
                self._learn(slot, ray.get(ref))
            except Exception as exc:
                log.warning("slot %s did not start: %s", slot.name, exc)
                self.replace(slot)
            else:
                log.info("slot %s ready on %s", slot.name, slot.node)
        return changed

    @staticmethod
    def _learn(slot: Slot, info: dict[str, Any]) -> None:
        slot.info, slot.ready = info, True
        slot.node = slot.node or str(info.get("node", ""))
        slot.lease_renewed = slot.idle_since = time.monotonic()

    def idle(self) -> list[Slot]:
        """Slots that are warm and have no chunk."""
        return [slot for slot in self.slots if slot.idle and slot.ready]

    def count(self) -> dict[str, int]:
        """Slots per pool (``cpu``/``gpu``), warming ones included."""
        out = {"cpu": 0, "gpu": 0}
        for slot in self.slots:
            out[slot.pool] += 1
        return out

    def release_idle(self, now: float, idle_s: float, surplus: dict[str, int]) -> int:
        """Release up to ``surplus[pool]`` warm slots per pool that have been idle since before ``now - idle_s``
        (longest idle first), so their nodes hold no actor and can scale down. Returns how many went."""
        released = 0
        idle = sorted((s for s in self.slots if s.idle and s.ready and s.warm_ref is None), key=lambda s: s.idle_since)
        left = dict(surplus)
        for slot in idle:
            if now - slot.idle_since < idle_s or left.get(slot.pool, 0) <= 0:
                continue
            left[slot.pool] -= 1
            closing = slot.actor.close.remote()  # Blender exits cleanly; the kill follows regardless
            try:
                ray.wait([closing], timeout=2)
            except Exception:
                log.debug("closing %s failed", slot.name, exc_info=True)
            self.remove(slot)
            log.info("slot %s released after %.0f s idle", slot.name, now - slot.idle_since)
            released += 1
        return released

    def shutdown(self) -> None:
        """Stop every Blender, then every actor."""
        closing = [slot.actor.close.remote() for slot in self.slots]
        try:
            ray.wait(closing, num_returns=len(closing), timeout=10)
        except Exception:
            log.debug("closing workers failed", exc_info=True)
        for slot in self.slots:
            self._kill(slot)
        self.slots.clear()
