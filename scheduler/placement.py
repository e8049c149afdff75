"""Where a chunk may run and, when nowhere, why: pure functions of the slots and the job's needs.

GPU jobs go to GPU slots (CPU slots only when the job allows it and no GPU slot exists); CPU jobs never take a
GPU slot; nodes blocklisted for the job get none of its chunks; a retried chunk goes to a node it has not failed
on whenever such a node could take it, even if that means waiting for it to be free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from farm.contract import JobSettings
from farm.domain import reasons


class SlotLike(Protocol):
    """What placement reads of a slot."""

    @property
    def node(self) -> str: ...

    @property
    def gpus(self) -> float: ...

    @property
    def ready(self) -> bool: ...


S = TypeVar("S", bound=SlotLike)


@dataclass(frozen=True)
class Needs:
    """What a job asks of a slot."""

    gpu: bool
    allow_cpu_fallback: bool

    @classmethod
    def of(cls, settings: JobSettings) -> Needs:
        return cls(settings.gpu, settings.allow_cpu_fallback)

    def fits(self, slot: SlotLike, gpu_slots_exist: bool) -> bool:
        """Whether the slot's kind suits the job (ignoring blocklists)."""
        if self.gpu:
            return slot.gpus > 0 or (self.allow_cpu_fallback and not gpu_slots_exist)
        return slot.gpus == 0


def pick_slot(
    idle: Sequence[S],
    ready: Sequence[S],
    needs: Needs,
    blocked: set[str],
    failed_on: set[str],
) -> S | None:
    """An idle slot for a chunk, or None (none fits, or a better node will be free later).

    ``ready``: every warm slot, busy or not; ``failed_on``: nodes where this chunk failed before.
    """
    gpu_slots_exist = any(slot.gpus > 0 for slot in ready)

    def fits(slot: S) -> bool:
        return slot.node not in blocked and needs.fits(slot, gpu_slots_exist)

    candidates = [slot for slot in idle if fits(slot)]
    if not candidates or not failed_on:
        return candidates[0] if candidates else None
    elsewhere = [slot for slot in candidates if slot.node not in failed_on]
    if elsewhere:
        return elsewhere[0]
    if any(fits(slot) and slot.node not in failed_on for slot in ready):
        return None  # another node can take it once it is free
    return candidates[0]


def why_waiting(ready: Sequence[SlotLike], needs: Needs, blocked: set[str], job_id: str) -> str:
    """Why no slot takes the job's chunks ("" when some slot could). A reason starting with ``NO_NODE_LEFT``
    means no node may ever take it until one is unblocked."""
    if not ready:
        return reasons.make("no_slot")  # each of these starts with WAITING
    gpu_slots_exist = any(slot.gpus > 0 for slot in ready)
    kind = [slot for slot in ready if needs.fits(slot, gpu_slots_exist)]
    if not kind:
        if needs.gpu:
            return reasons.make("no_gpu_slot")
        return reasons.make("no_cpu_slot")
    if all(slot.node in blocked for slot in kind):
        return reasons.make("no_node_left", nodes=", ".join(sorted(blocked)), job=job_id)  # starts with NO_NODE_LEFT
    return ""
