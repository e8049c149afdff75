"""Fair share, caps and budgets through real Ray: a Dispatcher and two sleep-renderer slots of our own.

They run on the Ray of the session's embedded farm (Ray is one per process) with a database and store of
their own; the slots ask Ray for no CPUs because the session farm's Blender slot holds them all. The
renderer is the ``sleep:`` seam, so everything but Blender is the production code path.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from farm.clock import SystemClock, utc
from farm.contract import CompanyUpdate, JobCreate, ManifestEntry, Role
from farm.db.engine import Database
from farm.db.models import Blob, Company, Job, Task, TaskAttempt, UsageEntry
from farm.domain.states import JOB_TERMINAL, TASK_IN_FLIGHT
from farm.lifecycle import control
from farm.metering import usage_report
from farm.services import companies, jobs
from farm.services.auth import Principal, ensure_company
from scheduler.dispatcher import DispatchConfig, Dispatcher
from scheduler.fairshare import FairShare
from scheduler.pool import WorkerPool
from storage.base import blob_key
from storage.factory import StoreConfig
from storage.local import LocalDirStore
from tests.tenancy.conftest import sha
from workers.actor import WorkerConfig

pytestmark = [pytest.mark.ray]

SECONDS_PER_FRAME = 0.05
BLEND = b"BLENDER-v500 fair-share test input"


@dataclass
class Rig:
    db: Database
    store: LocalDirStore
    pool: WorkerPool
    dispatcher: Dispatcher
    clock: SystemClock
    root: Path

    def company(self, name: str, **limits: Any) -> Principal:
        now = self.clock.now()
        with self.db.session() as s:
            company = ensure_company(s, name, now)
            for key, value in limits.items():
                setattr(company, key, value)
            if s.get(Blob, (company.id, sha(BLEND))) is None:
                s.add(Blob(company_id=company.id, sha256=sha(BLEND), size=len(BLEND), created_at=now))
            src = self.root / "blend.bin"
            src.write_bytes(BLEND)
            self.store.put_file(blob_key(company.id, sha(BLEND)), src)
            return Principal(token_id="test", company_id=company.id, company=company.name, role=Role.COMPANY_ADMIN)

    def submit(self, who: Principal, chunks: int, frames_per_chunk: int = 2, priority: int = 50) -> str:
        spec = JobCreate(
            name=f"{who.company}-flood",
            blend_file="scene.blend",
            manifest={"scene.blend": ManifestEntry(sha256=sha(BLEND), size=len(BLEND))},
            frames=f"1-{chunks * frames_per_chunk}",
            chunk_size=frames_per_chunk,
            priority=priority,
        )
        with self.db.session() as s:
            job_id = jobs.create_job(s, who, spec, self.clock.now()).id
        self.dispatcher.wake.set()
        return job_id

    def cancel_all(self) -> None:
        admin = Principal("test", "", "", Role.PLATFORM_ADMIN)
        with self.db.session() as s:
            for job in s.scalars(select(Job)):
                if job.status not in {j.value for j in JOB_TERMINAL}:
                    control.request_cancel(s, jobs.get_job(s, admin, job.id, lock=True), self.clock.now())
        deadline = time.monotonic() + 10
        while any(not slot.idle for slot in self.pool.slots) and time.monotonic() < deadline:
            time.sleep(0.02)

    def slot_seconds(self, company_id: str, since: datetime, until: datetime) -> float:
        """Slot-seconds of the company's attempts inside [since, until], running ones up to now."""
        total = 0.0
        now = self.clock.now()
        with self.db.session() as s:
            rows = s.execute(
                select(TaskAttempt.started_at, TaskAttempt.ended_at)
                .join(Task, Task.id == TaskAttempt.task_id)
                .join(Job, Job.id == Task.job_id)
                .where(Job.company_id == company_id)
            ).all()
        for started, ended in rows:
            lo = max(utc(started), since)
            hi = min(utc(ended) if ended else now, until)
            total += max(0.0, (hi - lo).total_seconds())
        return total


@pytest.fixture(scope="module")
def rig(farm, tmp_path_factory) -> Iterator[Rig]:
    root: Path = tmp_path_factory.mktemp("fairshare")
    db = Database(f"sqlite:///{root / 'farm.db'}")
    db.migrate()
    store_cfg = StoreConfig(backend="local", root=str(root / "objects"))
    store = LocalDirStore(root / "objects")

    def make_config(name: str, resources: dict[str, float]) -> WorkerConfig:
        return WorkerConfig(
            name=name,
            store=store_cfg,
            cache_dir=str(root / "cache"),
            cache_bytes=10**8,
            work_dir=str(root / "work"),
            # The worker reports (and the ledger meters) one CPU, while the slot asks Ray for none:
            # the session farm's Blender slot holds every CPU of this Ray.
            resources={"cpu": 1.0},
            renderer=f"sleep:{SECONDS_PER_FRAME}",
        )

    pool = WorkerPool(make_config)
    for i in range(2):
        pool.add_slot(f"fair/slot-{i}", {"cpu": 0.0})
    pool.warm()
    clock = SystemClock()
    dispatcher = Dispatcher(db, pool, clock, DispatchConfig(interval_s=0.01), FairShare(600.0, 600.0))
    stop = threading.Event()
    thread = threading.Thread(target=dispatcher.run, args=(stop,), name="fair-dispatcher", daemon=True)
    thread.start()
    rig = Rig(db, store, pool, dispatcher, clock, root)
    try:
        yield rig
    finally:
        rig.cancel_all()
        stop.set()
        dispatcher.wake.set()
        thread.join(timeout=10)
        pool.shutdown()
        db.dispose()


def flood(rig: Rig, shares: dict[str, float], seconds: float) -> dict[str, float]:
    """Each company floods the farm; returns each one's fraction of slot-time after a warm-up."""
    who = {name: rig.company(name, cpu_share=share) for name, share in shares.items()}
    for w in who.values():
        rig.submit(w, chunks=300, frames_per_chunk=4)  # 0.2 s chunks: dispatch overhead stays small
    time.sleep(1.0)  # warm-up: the first chunks are handed out before any usage exists
    since = rig.clock.now()
    time.sleep(seconds)
    until = rig.clock.now()
    used = {name: rig.slot_seconds(w.company_id, since, until) for name, w in who.items()}
    rig.cancel_all()
    total = sum(used.values())
    # Two slots give 2 x seconds; a loaded machine loses some to dispatch overhead, but not most of it.
    assert total > 1.0 * seconds, f"the slots were mostly idle: {used}"
    return {name: used[name] / total for name in used}


def test_equal_shares_split_slot_time_evenly(rig):
    split = flood(rig, {"even-a": 1.0, "even-b": 1.0}, seconds=4.0)
    assert abs(split["even-a"] - 0.5) <= 0.05, split  # within ±10% of the 50% each is due


def test_three_to_one_shares_split_75_25(rig):
    split = flood(rig, {"big-a": 3.0, "small-b": 1.0}, seconds=5.0)
    assert abs(split["big-a"] - 0.75) <= 0.075, split  # within ±10% of 75%
    assert abs(split["small-b"] - 0.25) <= 0.10, split


def test_late_company_gets_a_slot_within_one_chunk(rig):
    early = rig.company("early-bird")
    rig.submit(early, chunks=200, frames_per_chunk=10)  # 0.5 s chunks hold both slots
    time.sleep(1.5)
    late = rig.company("late-comer")
    asked = rig.clock.now()
    job_id = rig.submit(late, chunks=5, frames_per_chunk=10)
    deadline = time.monotonic() + 5
    first = None
    while first is None and time.monotonic() < deadline:
        with rig.db.session() as s:
            first = s.scalar(
                select(func.min(TaskAttempt.id)).join(Task, Task.id == TaskAttempt.task_id).where(Task.job_id == job_id)
            )
        time.sleep(0.01)
    waited = (rig.clock.now() - asked).total_seconds()
    with rig.db.session() as s:
        durations = [
            (utc(e) - utc(b)).total_seconds()
            for b, e in s.execute(
                select(TaskAttempt.started_at, TaskAttempt.ended_at)
                .join(Task, Task.id == TaskAttempt.task_id)
                .join(Job, Job.id == Task.job_id)
                .where(Job.company_id == early.company_id, TaskAttempt.ended_at.is_not(None))
            ).all()
        ]
    chunk = max(durations)
    rig.cancel_all()
    assert first is not None, "the late company never got a slot"
    assert waited <= chunk + 0.1, f"waited {waited:.2f}s for a slot; one chunk takes {chunk:.2f}s"


def test_burst_cap_is_never_exceeded(rig):
    capped = rig.company("capped", max_slots=1)
    job_id = rig.submit(capped, chunks=8)
    peak = 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with rig.db.session() as s:
            job = s.get(Job, job_id)
            in_flight = s.scalar(
                select(func.count()).select_from(Task).where(
                    Task.job_id == job_id, Task.status.in_([t.value for t in TASK_IN_FLIGHT])
                )
            )
            done = job.status in {j.value for j in JOB_TERMINAL}
        peak = max(peak, int(in_flight or 0))
        if done:
            break
        time.sleep(0.01)
    assert done and job.status == "completed"
    assert peak == 1


def test_over_budget_waits_with_a_reason_and_runs_when_raised(rig):
    broke = rig.company("broke", cpu_hours_budget=0.0)
    job_id = rig.submit(broke, chunks=2)
    time.sleep(0.5)
    with rig.db.session() as s:
        job = s.get(Job, job_id)
        assert job.status == "queued", job.status
        assert job.status_reason.startswith("quota exceeded: "), job.status_reason
        assert "CPU-hour budget" in job.status_reason
        assert s.scalar(select(func.count()).select_from(TaskAttempt).join(Task).where(Task.job_id == job_id)) == 0
    admin = Principal("test", "", "", Role.PLATFORM_ADMIN)
    with rig.db.session() as s:
        companies.update(s, admin, "broke", CompanyUpdate(cpu_hours_budget=1.0))
    rig.dispatcher.wake.set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with rig.db.session() as s:
            job = s.get(Job, job_id)
            if job.status in {j.value for j in JOB_TERMINAL}:
                break
        time.sleep(0.02)
    assert job.status == "completed" and job.status_reason == ""


def test_ledger_equals_attempt_wall_time_times_resources(rig):
    who = rig.company("metered", rates={"cpu": 2.0})
    job_id = rig.submit(who, chunks=6)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with rig.db.session() as s:
            if s.get(Job, job_id).status == "completed":
                break
        time.sleep(0.02)
    with rig.db.session() as s:
        attempts = s.execute(
            select(TaskAttempt.started_at, TaskAttempt.ended_at).join(Task).where(Task.job_id == job_id)
        ).all()
        wall = sum((utc(e) - utc(b)).total_seconds() for b, e in attempts)
        ledger = s.scalar(
            select(func.sum(UsageEntry.seconds * UsageEntry.count)).where(UsageEntry.job_id == job_id)
        )
        month = f"{rig.clock.now():%Y-%m}"
        report = usage_report.build(s, Principal("t", "", "", Role.PLATFORM_ADMIN), month, "metered", per_job=True)
        assert s.scalar(select(Company.rates).where(Company.id == who.company_id)) == {"cpu": 2.0}
    assert len(attempts) == 6 and wall > 6 * 2 * SECONDS_PER_FRAME
    assert abs(ledger - wall * 1.0) <= 0.01 * wall  # one CPU per slot
    (row,) = [r for r in report.rows if r.job_id == job_id]
    assert abs(row.seconds - wall) <= 0.01 * wall
    assert abs(row.cost - row.hours * 2.0) < 1e-6 and row.rate == 2.0
