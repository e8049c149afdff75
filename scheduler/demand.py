"""Demand-driven scaling: the queue becomes resource demand that Ray's autoscaler sees, idle slots go away.

Each turn (at most every ``interval_s``) the ``Autoscaler`` reads, per company and pool (``cpu``/``gpu``), the
chunks waiting and the chunks in flight from the jobs' maintained counters (no frame or task table scan), and
works out the slots the farm wants (``wanted_slots``):

* a company never wants more than its ``max_slots`` (running chunks count first, then queued GPU, then CPU);
* a company over its monthly budget for a pool wants no new slot of it (its jobs are held, not run);
* each pool is capped by the farm's maximum (``FARM_AUTOSCALE_MAX_CPU_SLOTS`` / ``..._GPU_SLOTS``).

The wanted slots are sent as bundles (``{"GPU": 1}`` per GPU slot, ``{"CPU": cores}`` per CPU slot) with
``ray.autoscaler.sdk.request_resources``, which replaces the previous request: the autoscaler then adds nodes of
the worker group whose shape fits, GPU and CPU groups independently. ``scheduler.nodes.NodeTracker`` creates the
slots of a node only while the pool has fewer slots than wanted, and this module releases a slot that stayed idle
for ``FARM_SLOT_IDLE_TIMEOUT_S`` while its pool has more slots than wanted. A node without actors is idle to Ray,
and the autoscaler removes it after its own idle timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from farm.clock import Clock
from farm.contract import JobSettings
from farm.db.engine import Database
from farm.db.models import Company, Job
from farm.domain.states import JOB_DISPATCHABLE
from farm.metering import quota
from scheduler.nodes import NodeTracker, layout_with

if TYPE_CHECKING:
    from farm.settings import ServerSettings
    from scheduler.pool import WorkerPool

log = logging.getLogger(__name__)

POOLS = ("gpu", "cpu")  # GPU first: a capped company's room goes to its GPU chunks before its CPU ones
Bundle = dict[str, float]
Requester = Callable[[list[Bundle]], None]


@dataclass(frozen=True)
class Backlog:
    """One company's chunks by pool: waiting for a slot, and holding one; its burst cap."""

    company: str
    max_slots: int | None = None
    queued: dict[str, int] = field(default_factory=dict)
    running: dict[str, int] = field(default_factory=dict)
    over_budget: frozenset[str] = frozenset()  # pools whose monthly budget the company spent


@dataclass(frozen=True)
class Limits:
    """The farm's caps and the shape of a slot."""

    max_cpu_slots: int
    max_gpu_slots: int
    cpu_slot_cores: int = 0  # 0: a CPU slot takes a whole node; its demand bundle asks for one core

    def cap(self, pool: str) -> int:
        return self.max_gpu_slots if pool == "gpu" else self.max_cpu_slots


def wanted_slots(backlogs: Iterable[Backlog], limits: Limits) -> dict[str, int]:
    """Slots per pool the queue needs now: what runs plus what waits, within each company's cap and the farm's."""
    totals = dict.fromkeys(POOLS, 0)
    for b in backlogs:
        room = b.max_slots if b.max_slots is not None else 1 << 62
        for pool in POOLS:  # what already runs keeps its slot
            held = min(b.running.get(pool, 0), room)
            totals[pool] += held
            room -= held
        for pool in POOLS:
            if pool in b.over_budget:
                continue
            more = min(b.queued.get(pool, 0), room)
            totals[pool] += more
            room -= more
    return {pool: min(totals[pool], limits.cap(pool)) for pool in POOLS}


def bundles(wanted: dict[str, int], limits: Limits) -> list[Bundle]:
    """The resource request for ``wanted`` slots: one bundle per slot, shaped like the slot."""
    cpu: Bundle = {"CPU": float(max(limits.cpu_slot_cores, 1))}
    return [{"GPU": 1.0} for _ in range(wanted.get("gpu", 0))] + [dict(cpu) for _ in range(wanted.get("cpu", 0))]


def job_pool(settings: dict[str, object], gpu_pool: bool) -> str | None:
    """The pool a job's chunks need: ``gpu``; ``cpu`` for CPU jobs and for GPU jobs that may fall back when the
    farm has no GPU group; None when no pool can take them."""
    spec = JobSettings.of(settings)
    if not spec.gpu:
        return "cpu"
    if gpu_pool:
        return "gpu"
    return "cpu" if spec.allow_cpu_fallback else None


def read_backlogs(s: Session, now: datetime, gpu_pool: bool) -> list[Backlog]:
    """Every company with chunks waiting or in flight, from the jobs' counters (one row per live job)."""
    rows = s.execute(
        select(Job.company_id, Job.settings, Job.tasks_runnable, Job.tasks_in_flight).where(
            Job.status.in_([j.value for j in JOB_DISPATCHABLE]),
            (Job.tasks_runnable > 0) | (Job.tasks_in_flight > 0),
        )
    ).all()
    queued: dict[str, dict[str, int]] = {}
    running: dict[str, dict[str, int]] = {}
    for company_id, settings, runnable, in_flight in rows:
        pool = job_pool(dict(settings or {}), gpu_pool)
        if pool is None:
            continue
        q, r = queued.setdefault(company_id, {}), running.setdefault(company_id, {})
        q[pool] = q.get(pool, 0) + int(runnable or 0)
        r[pool] = r.get(pool, 0) + int(in_flight or 0)
    if not queued:
        return []
    companies = list(s.scalars(select(Company).where(Company.id.in_(list(queued)))))
    budgeted = [c.id for c in companies if c.gpu_hours_budget is not None or c.cpu_hours_budget is not None]
    month = quota.month_of(now)
    used = quota.month_hours(s, budgeted, month) if budgeted else {}
    out = []
    for c in sorted(companies, key=lambda row: row.id):
        spent = frozenset(
            pool
            for pool in POOLS
            if c.id in budgeted and quota.over_budget(c, pool, used.get((c.id, pool), 0.0), month) is not None
        )
        out.append(Backlog(c.id, c.max_slots, queued[c.id], running[c.id], spent))
    return out


def ray_request(bundle_list: list[Bundle]) -> None:
    """Tell Ray's autoscaler the cluster should hold these bundles (replaces the previous request)."""
    from ray.autoscaler.sdk import request_resources

    request_resources(bundles=bundle_list)


class SlotSource(Protocol):
    """What the autoscaler needs of the pool (``scheduler.pool.WorkerPool``)."""

    def release_idle(self, now: float, idle_s: float, surplus: dict[str, int]) -> int: ...

    def count(self) -> dict[str, int]: ...


class Autoscaler:
    """A periodic hook of the dispatch loop (same thread as the pool): demand to Ray, idle slots released."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        pool: SlotSource,
        limits: Limits,
        idle_timeout_s: float,
        request: Requester = ray_request,
        interval_s: float = 1.0,
    ) -> None:
        self.db = db
        self.clock = clock
        self.pool = pool
        self.limits = limits
        self.idle_timeout_s = idle_timeout_s
        self.request = request
        self.interval_s = interval_s
        self.wanted: dict[str, int] = dict.fromkeys(POOLS, 0)
        self.requested: list[Bundle] | None = None
        self._next = float("-inf")

    def __call__(self) -> None:
        mono = self.clock.monotonic()
        if mono < self._next:
            return
        self._next = mono + self.interval_s
        try:
            with self.db.session() as s:
                backlogs = read_backlogs(s, self.clock.now(), self.limits.max_gpu_slots > 0)
        except Exception:
            log.warning("autoscaler: the queue could not be read; keeping the last demand", exc_info=True)
            return
        self.wanted = wanted_slots(backlogs, self.limits)
        wanted_bundles = bundles(self.wanted, self.limits)
        if wanted_bundles != self.requested:
            try:
                self.request(wanted_bundles)
            except Exception:
                log.warning("autoscaler: Ray did not take the resource request", exc_info=True)
            else:
                self.requested = wanted_bundles
                log.info("autoscaler: asking for %d GPU and %d CPU slot(s)", self.wanted["gpu"], self.wanted["cpu"])
        have = self.pool.count()
        surplus = {pool: max(have.get(pool, 0) - self.wanted[pool], 0) for pool in POOLS}
        if any(surplus.values()):
            released = self.pool.release_idle(mono, self.idle_timeout_s, surplus)
            if released:
                log.info("autoscaler: released %d idle slot(s)", released)

    def wants(self) -> dict[str, int]:
        """Slots per pool the tracker may create (as of the last read)."""
        return dict(self.wanted)


def follow_nodes(
    db: Database, clock: Clock, pool: WorkerPool, settings: ServerSettings
) -> tuple[NodeTracker, Autoscaler | None]:
    """The cluster-mode node tracker and, with ``FARM_AUTOSCALE``, the autoscaler it asks how many slots to make
    (add the autoscaler to the dispatcher's periodic hooks)."""
    layout = layout_with(settings.cpu_slot_cores, cpu_on_gpu_nodes=not settings.autoscale)
    if not settings.autoscale:
        return NodeTracker(pool, layout=layout), None
    limits = Limits(settings.autoscale_max_cpu_slots, settings.autoscale_max_gpu_slots, settings.cpu_slot_cores)
    autoscaler = Autoscaler(db, clock, pool, limits, settings.slot_idle_timeout_s)
    return NodeTracker(pool, layout=layout, wanted=autoscaler.wants), autoscaler
