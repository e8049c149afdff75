"""From the queue to the slots the farm asks Ray's autoscaler for (``scheduler.demand``), and the tracker that only
creates the slots wanted. No Ray here: a real SQLite database, a fake pool and a recording request."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from farm.clock import SystemClock
from farm.db.engine import Database
from farm.db.models import Job, UsageEntry
from farm.domain.states import JobStatus, TaskStatus
from scheduler.demand import Autoscaler, Backlog, Limits, bundles, read_backlogs, wanted_slots
from scheduler.nodes import NodeTracker, NodeView, slot_layout
from tests import factories

NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
LIMITS = Limits(max_cpu_slots=10, max_gpu_slots=4, cpu_slot_cores=8)


def test_running_and_queued_chunks_are_wanted_per_pool():
    b = Backlog("a", queued={"cpu": 3, "gpu": 2}, running={"cpu": 1})
    assert wanted_slots([b], LIMITS) == {"gpu": 2, "cpu": 4}


def test_a_company_never_wants_more_than_its_max_slots_running_first_then_gpu():
    capped = Backlog("a", max_slots=3, queued={"cpu": 5, "gpu": 5}, running={"cpu": 2})
    assert wanted_slots([capped], LIMITS) == {"gpu": 1, "cpu": 2}
    full = Backlog("b", max_slots=2, queued={"cpu": 5}, running={"cpu": 2})
    assert wanted_slots([full], LIMITS) == {"gpu": 0, "cpu": 2}
    none = Backlog("c", max_slots=0, queued={"cpu": 5, "gpu": 1})
    assert wanted_slots([none], LIMITS) == {"gpu": 0, "cpu": 0}


def test_over_budget_pools_want_nothing_new_and_the_farm_caps_each_pool():
    spent = Backlog("a", queued={"gpu": 3, "cpu": 2}, running={"gpu": 1}, over_budget=frozenset({"gpu"}))
    other = Backlog("b", queued={"cpu": 20, "gpu": 9})
    assert wanted_slots([spent], LIMITS) == {"gpu": 1, "cpu": 2}
    assert wanted_slots([spent, other], LIMITS) == {"gpu": 4, "cpu": 10}


def test_bundles_are_shaped_like_the_slots():
    assert bundles({"gpu": 2, "cpu": 1}, LIMITS) == [{"GPU": 1.0}, {"GPU": 1.0}, {"CPU": 8.0}]
    assert bundles({"gpu": 0, "cpu": 2}, Limits(4, 0)) == [{"CPU": 1.0}, {"CPU": 1.0}]  # whole-node slots
    assert bundles({"gpu": 0, "cpu": 0}, LIMITS) == []  # the request that lets the cluster scale down


def test_layout_splits_cpu_slots_and_leaves_gpu_nodes_to_gpu_work():
    assert slot_layout(16, 0, cpu_slot_cores=8) == [("cpu-0", {"cpu": 8.0}), ("cpu-1", {"cpu": 8.0})]
    assert slot_layout(8, 0, cpu_slot_cores=8) == [("cpu", {"cpu": 8.0})]
    assert slot_layout(4, 0, cpu_slot_cores=8) == []
    assert slot_layout(9, 2, cpu_on_gpu_nodes=False) == [(f"gpu-{i}", {"gpu": 1.0, "cpu": 1.0}) for i in range(2)]
    assert slot_layout(9, 2) == [*slot_layout(9, 2, cpu_on_gpu_nodes=False), ("cpu", {"cpu": 7.0})]


@pytest.fixture()
def db(tmp_path: Path) -> Any:
    database = Database(f"sqlite:///{tmp_path / 'farm.db'}")
    database.migrate()
    yield database
    database.dispose()


def test_backlogs_come_from_the_jobs_counters_with_caps_budgets_and_fallback(db):
    with db.session() as s:
        capped = factories.company(s, "capped", max_slots=2)
        broke = factories.company(s, "broke", gpu_hours_budget=1.0)
        factories.job(s, capped, frames="1-5", status=JobStatus.ACTIVE, tasks=["running"] + ["queued"] * 4)
        factories.job(s, broke, frames="1-3", settings={"gpu": True, "allow_cpu_fallback": False})
        factories.job(s, broke, frames="1-2", settings={"gpu": True, "allow_cpu_fallback": True})
        factories.job(s, "idle", frames="1-3", status=JobStatus.COMPLETED, tasks=["completed"] * 3)
        factories.job(s, "paused", frames="1-3", status=JobStatus.PAUSED, tasks=["paused"] * 3)
        s.add(
            UsageEntry(
                company_id=broke.id,
                job_id="j",
                task_id="t",
                attempt=1,
                node="n",
                resource="gpu",
                count=1,
                started_at=NOW - timedelta(hours=3),
                ended_at=NOW - timedelta(hours=1),
                seconds=7200.0,
                outcome="completed",
            )
        )
    with db.session() as s:
        backlogs = {b.company: b for b in read_backlogs(s, NOW, gpu_pool=True)}
        names = {factories.company(s, n).id: n for n in ("capped", "broke")}
    assert {names[c] for c in backlogs} == {"capped", "broke"}  # finished and paused jobs want nothing
    by_name = {names[c]: b for c, b in backlogs.items()}
    assert by_name["capped"].queued == {"cpu": 4} and by_name["capped"].running == {"cpu": 1}
    assert by_name["capped"].max_slots == 2
    assert by_name["broke"].queued == {"gpu": 5} and by_name["broke"].over_budget == frozenset({"gpu"})
    assert wanted_slots(backlogs.values(), LIMITS) == {"gpu": 0, "cpu": 2}
    with db.session() as s:  # no GPU group: GPU jobs that may fall back become CPU demand, the others none
        by_pool = {names[b.company]: b.queued for b in read_backlogs(s, NOW, gpu_pool=False)}
    assert by_pool["broke"] == {"cpu": 2}


@dataclass
class PoolSlot:
    name: str
    resources: dict[str, float]
    node: str = ""
    node_id: str = ""
    task_id: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


class CountingPool:
    """The pool as the tracker and the autoscaler see it: slots to add, count and release."""

    def __init__(self) -> None:
        self.slots: list[PoolSlot] = []
        self.node_alive = lambda _node_id: True
        self.released: list[tuple[float, float, dict[str, int]]] = []

    def add_slot(self, name: str, resources: dict[str, float], node: str = "", node_id: str = "") -> PoolSlot:
        slot = PoolSlot(name, dict(resources), node, node_id)
        self.slots.append(slot)
        return slot

    def count(self) -> dict[str, int]:
        out = {"cpu": 0, "gpu": 0}
        for slot in self.slots:
            out["gpu" if slot.resources.get("gpu") else "cpu"] += 1
        return out

    def release_idle(self, now: float, idle_s: float, surplus: dict[str, int]) -> int:
        self.released.append((now, idle_s, dict(surplus)))
        gone = 0
        for pool, n in surplus.items():
            for slot in [s for s in self.slots if bool(s.resources.get("gpu")) == (pool == "gpu")][:n]:
                self.slots.remove(slot)
                gone += 1
        return gone


def node(node_id: str, cpus: int, gpus: int = 0) -> dict[str, Any]:
    resources = {"CPU": float(cpus), **({"GPU": float(gpus)} if gpus else {})}
    return {"NodeID": node_id, "Alive": True, "NodeManagerHostname": node_id, "Resources": resources}


def test_autoscaler_asks_ray_for_the_queue_and_the_tracker_makes_only_the_wanted_slots(db):
    requests: list[list[dict[str, float]]] = []
    pool = CountingPool()
    limits = Limits(max_cpu_slots=3, max_gpu_slots=1, cpu_slot_cores=2)
    scaler = Autoscaler(db, SystemClock(), pool, limits, idle_timeout_s=30.0, request=requests.append, interval_s=0)
    table = [node("cpu-a", 4), node("gpu-a", 1, 1)]
    tracker = NodeTracker(
        pool,
        NodeView(lambda: [dict(r) for r in table]),
        interval_s=0,
        layout=lambda c, g: slot_layout(c, g, 2, cpu_on_gpu_nodes=False),
        wanted=scaler.wants,
    )
    scaler()
    tracker.sync()
    assert requests == [[]] and pool.slots == []  # nothing queued: no demand, the nodes get no slot
    with db.session() as s:
        factories.job(s, "a", frames="1-5")
        factories.job(s, "a", frames="1-4", settings={"gpu": True})
    scaler()
    assert requests[-1] == [{"GPU": 1.0}, {"CPU": 2.0}, {"CPU": 2.0}, {"CPU": 2.0}]
    tracker.sync()
    assert sorted(s.name for s in pool.slots) == ["cpu-a/cpu-0", "cpu-a/cpu-1", "gpu-a/gpu-0"]
    scaler()
    assert len(requests) == 2  # the same demand is not sent again
    table.append(node("cpu-b", 2))  # the node the autoscaler added joins: it gets the third CPU slot
    tracker.sync()
    assert sorted(s.name for s in pool.slots) == ["cpu-a/cpu-0", "cpu-a/cpu-1", "cpu-b/cpu", "gpu-a/gpu-0"]
    with db.session() as s:  # the queue drains: demand goes to nothing, surplus slots are released
        for other in s.scalars(select(Job)):
            other.tasks_runnable, other.status = 0, JobStatus.COMPLETED
    scaler()
    assert requests[-1] == [] and pool.released[-1][1:] == (30.0, {"gpu": 1, "cpu": 3})
    assert pool.slots == []
    tracker.sync()
    assert pool.slots == []  # released slots are not made again while nothing waits


def test_tasks_runnable_counts_soft_failed_chunks_too(db):
    with db.session() as s:
        factories.job(
            s, "a", frames="1-3", status=JobStatus.ACTIVE, tasks=[TaskStatus.SOFT_FAILED, "queued", "completed"]
        )
    with db.session() as s:
        [b] = read_backlogs(s, NOW, gpu_pool=True)
    assert b.queued == {"cpu": 2}
