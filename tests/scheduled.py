"""A real scheduler for tests: a Dispatcher over sleep-renderer slots on the session farm's Ray (slots ask Ray for
no resources: the session farm's slot holds them), and the API app on the same database, whose notify wakes the
dispatcher as the embedded farm wires it. ``Rig`` submits jobs and reads what happened."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from farm.db.models import Frame, TaskAttempt
from scheduler.dispatcher import DispatchConfig, Dispatcher
from scheduler.fairshare import FairShare
from scheduler.pool import WorkerPool
from storage.factory import StoreConfig
from tests import factories
from workers.actor import WorkerConfig

BLEND = b"BLENDER-v500 chunk actions test input"


@dataclass
class Rig:
    farm: factories.ApiFarm
    http: TestClient
    dispatcher: Dispatcher

    def submit(self, name: str, frames: str, chunk: int, **spec: Any) -> str:
        sha = hashlib.sha256(BLEND).hexdigest()
        body = {
            "name": name,
            "blend_file": "scene.blend",
            "manifest": {"scene.blend": {"sha256": sha, "size": len(BLEND)}},
            "frames": frames,
            "chunk_size": chunk,
            **spec,
        }
        r = self.http.post("/api/v1/jobs", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self.http.get(f"/api/v1/jobs/{job_id}").json())

    def tasks(self, job_id: str) -> list[dict[str, Any]]:
        return list(self.http.get(f"/api/v1/jobs/{job_id}/tasks").json()["tasks"])

    def wait(self, check: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.02)
        raise AssertionError(f"not true after {timeout}s: {what}")

    def ended(self, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
        return self.wait(
            lambda: self.job(job_id)["status"] in ("completed", "failed", "canceled") and self.job(job_id),
            timeout,
            f"job {job_id} ended ({self.job(job_id)['status']}, {self.tasks(job_id)})",
        )

    def frames(self, job_id: str) -> dict[int, Frame]:
        with self.farm.db.session() as s:
            rows = list(s.scalars(select(Frame).where(Frame.job_id == job_id)))
            for row in rows:
                s.expunge(row)
        return {row.frame: row for row in rows}

    def attempts(self, task_id: str) -> list[TaskAttempt]:
        with self.farm.db.session() as s:
            rows = list(s.scalars(select(TaskAttempt).where(TaskAttempt.task_id == task_id).order_by("number")))
            for row in rows:
                s.expunge(row)
        return rows


@contextmanager
def scheduled(
    root: Path, name: str, renderer: str, slots: int = 2, config: DispatchConfig | None = None
) -> Iterator[Rig]:
    """The rig, running until the block ends; then every job is canceled and the slots are shut down."""
    with factories.api_farm(root) as api, factories.client(api) as http:
        http.put(f"/api/v1/blobs/{hashlib.sha256(BLEND).hexdigest()}", content=BLEND).raise_for_status()

        def make_config(slot: str, resources: dict[str, float]) -> WorkerConfig:
            return WorkerConfig(
                name=slot,
                store=StoreConfig(backend="local", root=str(root / "objects")),
                cache_dir=str(root / "cache"),
                cache_bytes=10**8,
                work_dir=str(root / "work"),
                resources={"cpu": 1.0},  # metered; Ray is asked for none (the session farm's slot holds them)
                renderer=renderer,
            )

        pool = WorkerPool(make_config)
        for i in range(slots):
            pool.add_slot(f"{name}/slot-{i}", {"cpu": 0.0})
        pool.warm()
        dispatcher = Dispatcher(
            api.db, pool, api.clock, config or DispatchConfig(interval_s=0.01), FairShare(600.0, 600.0)
        )
        api.app.state.ctx.notify = dispatcher.wake.set  # as the embedded farm wires it
        stop = threading.Event()
        thread = threading.Thread(target=dispatcher.run, args=(stop,), name=f"{name}-dispatcher", daemon=True)
        thread.start()
        try:
            yield Rig(api, http, dispatcher)
        finally:
            for job in http.get("/api/v1/jobs").json()["jobs"]:
                http.post(f"/api/v1/jobs/{job['id']}/cancel")
            deadline = time.monotonic() + 10
            while any(not slot.idle for slot in pool.slots) and time.monotonic() < deadline:
                time.sleep(0.02)
            stop.set()
            dispatcher.wake.set()
            thread.join(timeout=10)
            pool.shutdown()
