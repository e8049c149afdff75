"""A real scheduler for pipeline tests: a Dispatcher over two sleep-renderer slots on the session farm's Ray, with
a database and store of its own (everything but Blender is the production code path)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from farm.clock import SystemClock
from farm.contract import JobCreate, ManifestEntry, Role
from farm.db.engine import Database
from farm.db.models import Blob, Job
from farm.domain.states import JOB_TERMINAL
from farm.lifecycle import control
from farm.services import jobs
from farm.services.auth import Principal, ensure_company
from scheduler.dispatcher import DispatchConfig, Dispatcher
from scheduler.fairshare import FairShare
from scheduler.pool import WorkerPool
from storage.base import blob_key
from storage.factory import StoreConfig
from storage.local import LocalDirStore
from tests.tenancy.conftest import api, sha  # noqa: F401  (api: the API-only fixture, for these tests too)
from workers.actor import WorkerConfig

BLEND = b"BLENDER-v500 pipeline test input"
SECONDS_PER_FRAME = 0.05


@dataclass
class Rig:
    db: Database
    store: LocalDirStore
    dispatcher: Dispatcher
    pool: WorkerPool
    clock: SystemClock
    root: Path

    def company(self, name: str) -> Principal:
        now = self.clock.now()
        with self.db.session() as s:
            company = ensure_company(s, name, now)
            if s.get(Blob, (company.id, sha(BLEND))) is None:
                s.add(Blob(company_id=company.id, sha256=sha(BLEND), size=len(BLEND), created_at=now))
            src = self.root / "blend.bin"
            src.write_bytes(BLEND)
            self.store.put_file(blob_key(company.id, sha(BLEND)), src)
            return Principal(token_id="test", company_id=company.id, company=company.name, role=Role.COMPANY_ADMIN)

    def submit(self, who: Principal, name: str, frames: str, chunk: int = 2, **spec: Any) -> str:
        body = JobCreate(
            name=name,
            blend_file="scene.blend",
            manifest={"scene.blend": ManifestEntry(sha256=sha(BLEND), size=len(BLEND))},
            frames=frames,
            chunk_size=chunk,
            **spec,
        )
        with self.db.session() as s:
            job_id = jobs.create_job(s, who, body, self.clock.now()).id
        self.dispatcher.wake.set()
        return job_id

    def job(self, job_id: str) -> Job:
        with self.db.session() as s:
            row = s.get(Job, job_id)
            assert row is not None
            s.expunge(row)
            return row

    def wait_for(self, job_id: str, statuses: set[str], timeout: float = 30.0) -> Job:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = self.job(job_id)
            if row.status.value in statuses:
                return row
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} is {self.job(job_id).status.value} ({self.job(job_id).status_reason})")

    def cancel_all(self) -> None:
        admin = Principal("test", "", "", Role.PLATFORM_ADMIN)
        with self.db.session() as s:
            for job in s.scalars(select(Job)):
                if job.status not in JOB_TERMINAL:
                    control.request_cancel(s, jobs.get_job(s, admin, job.id, lock=True), self.clock.now())
        deadline = time.monotonic() + 10
        while any(not slot.idle for slot in self.pool.slots) and time.monotonic() < deadline:
            time.sleep(0.02)


@pytest.fixture(scope="module")
def rig(farm: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    root: Path = tmp_path_factory.mktemp("pipeline")
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
            resources={"cpu": 1.0},  # what the ledger meters; Ray is asked for none (the session farm holds them)
            renderer=f"sleep:{SECONDS_PER_FRAME}",
        )

    pool = WorkerPool(make_config)
    for i in range(2):
        pool.add_slot(f"pipe/slot-{i}", {"cpu": 0.0})
    pool.warm()
    clock = SystemClock()
    dispatcher = Dispatcher(db, pool, clock, DispatchConfig(interval_s=0.01), FairShare(600.0, 600.0))
    stop = threading.Event()
    thread = threading.Thread(target=dispatcher.run, args=(stop,), name="pipeline-dispatcher", daemon=True)
    thread.start()
    rig = Rig(db, store, dispatcher, pool, clock, root)
    try:
        yield rig
    finally:
        rig.cancel_all()
        stop.set()
        dispatcher.wake.set()
        thread.join(timeout=10)
        pool.shutdown()
        db.dispose()
