"""Render slots: one Ray worker actor each, created with the slot's resources."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray

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
    task_id: str | None = None
    job_id: str | None = None
    attempt: int = 0
    render_ref: Any = None
    poll_ref: Any = None
    poll_sent_at: float = 0.0
    last_beat: float = 0.0
    cancel_sent: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def idle(self) -> bool:
        return self.task_id is None

    @property
    def gpus(self) -> float:
        return self.resources.get("gpu", 0.0)

    def release(self) -> None:
        self.task_id = self.job_id = None
        self.render_ref = self.poll_ref = None
        self.cancel_sent = False


class WorkerPool:
    """Creates and replaces worker actors."""

    def __init__(self, make_config: ConfigFactory) -> None:
        self.make_config = make_config
        self.slots: list[Slot] = []

    def _spawn(self, name: str, resources: dict[str, float]) -> Any:
        remote_cls = ray.remote(RenderWorker)
        return remote_cls.options(
            num_cpus=resources.get("cpu", 0.0),
            num_gpus=resources.get("gpu", 0.0),
            max_concurrency=4,  # render runs in one thread; poll and cancel must get through meanwhile
            max_restarts=0,
        ).remote(self.make_config(name, resources))

    def add_slot(self, name: str, resources: dict[str, float]) -> Slot:
        """Create the actor for a new slot."""
        slot = Slot(name=name, resources=dict(resources), actor=self._spawn(name, resources))
        self.slots.append(slot)
        return slot

    def replace(self, slot: Slot) -> None:
        """A dead actor is replaced by a fresh one with the same resources."""
        try:
            ray.kill(slot.actor)
        except Exception:
            log.debug("actor of %s already gone", slot.name)
        slot.actor = self._spawn(slot.name, slot.resources)
        slot.release()
        slot.info = {}

    def warm(self, timeout: float = 120.0) -> None:
        """Start Blender in every slot and learn where each runs."""
        infos = ray.get([slot.actor.warm.remote() for slot in self.slots], timeout=timeout)
        for slot, info in zip(self.slots, infos, strict=True):
            slot.info, slot.node = info, str(info.get("node", ""))

    def idle(self) -> list[Slot]:
        return [slot for slot in self.slots if slot.idle]

    def shutdown(self) -> None:
        """Stop every Blender, then every actor."""
        closing = [slot.actor.close.remote() for slot in self.slots]
        try:
            ray.wait(closing, num_returns=len(closing), timeout=10)
        except Exception:
            log.debug("closing workers failed", exc_info=True)
        for slot in self.slots:
            try:
                ray.kill(slot.actor)
            except Exception:
                log.debug("actor of %s already gone", slot.name)
        self.slots.clear()
