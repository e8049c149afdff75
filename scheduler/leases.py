"""Leases: an attempt that shows no progress for the task timeout is killed; a worker that ignores the kill loses
its actor. Pure: the dispatcher feeds the slot's lease times and applies the verdict."""

from __future__ import annotations

from enum import StrEnum

from farm.domain import reasons


class Lease(StrEnum):
    NEW = "new"  # a new attempt: its lease starts now
    OK = "ok"
    EXPIRED = "expired"  # kill the attempt (it fails, the node's fault)
    IGNORED = "ignored"  # killed, and the worker did not answer within the grace: replace the actor


def verdict(
    now: float,
    renewed: float,
    is_new: bool,
    killed_at: float | None,
    timeout_s: float,
    grace_s: float,
) -> Lease:
    """The state of one busy slot's lease at ``now`` (monotonic seconds)."""
    if is_new:
        return Lease.NEW
    if killed_at is not None:
        return Lease.IGNORED if now - killed_at > grace_s else Lease.OK
    return Lease.EXPIRED if now - renewed > timeout_s else Lease.OK


def expired_reason(timeout_s: float) -> str:
    return reasons.make("lease_expired", timeout=f"{timeout_s:g}")
