"""Issue 16 through the real scheduler: a Dispatcher over two sleep-renderer slots on the session farm's Ray, and
the API app on the same database (its notify wakes the dispatcher). A requeued running chunk is stopped and
rendered again (attempts, logs and frame bytes say so); a canceled chunk leaves the rest going and the job ends
canceled with its frames missing, not "completed"; a priority raised by PATCH is obeyed on the next pass."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from farm.clock import utc
from farm.db.models import Frame, TaskAttempt
from scheduler.dispatcher import DispatchConfig, Dispatcher
from scheduler.fairshare import FairShare
from scheduler.pool import WorkerPool
from storage.factory import StoreConfig
from tests import factories
from workers.actor import WorkerConfig
from workers.renderer import tiny_png

pytestmark = [pytest.mark.ray]

BLEND = b"BLENDER-v500 chunk actions test input"
#: Frames 101-104 take 0.8 s each (a chunk long enough to requeue while it renders), 201-208 0.3 s, others 0.05 s.
RENDERER = "sleep:0.05;slow:101-104=0.8;slow:201-208=0.3"


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


@pytest.fixture(scope="module")
def rig(farm: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    root = tmp_path_factory.mktemp("chunk-actions")
    with factories.api_farm(root) as api, factories.client(api) as http:
        http.put(f"/api/v1/blobs/{hashlib.sha256(BLEND).hexdigest()}", content=BLEND).raise_for_status()

        def make_config(name: str, resources: dict[str, float]) -> WorkerConfig:
            return WorkerConfig(
                name=name,
                store=StoreConfig(backend="local", root=str(root / "objects")),
                cache_dir=str(root / "cache"),
                cache_bytes=10**8,
                work_dir=str(root / "work"),
                resources={"cpu": 1.0},  # metered; Ray is asked for none (the session farm's slot holds them)
                renderer=RENDERER,
            )

        pool = WorkerPool(make_config)
        for i in range(2):
            pool.add_slot(f"chunk-actions/slot-{i}", {"cpu": 0.0})
        pool.warm()
        dispatcher = Dispatcher(api.db, pool, api.clock, DispatchConfig(interval_s=0.01), FairShare(600.0, 600.0))
        api.app.state.ctx.notify = dispatcher.wake.set  # as the embedded farm wires it
        stop = threading.Event()
        thread = threading.Thread(target=dispatcher.run, args=(stop,), name="chunk-actions-dispatcher", daemon=True)
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


def _after(when: datetime | None, moment: float) -> bool:
    return when is not None and utc(when).timestamp() >= moment


def test_requeue_of_a_running_chunk_stops_it_and_renders_it_again(rig: Rig) -> None:
    job_id = rig.submit("requeue-running", "101-104", chunk=4)
    rig.wait(lambda: 101 in rig.frames(job_id), what="frame 101 stored by the first attempt")
    asked = time.time()
    r = rig.http.post(f"/api/v1/jobs/{job_id}/tasks/0/requeue")
    assert r.status_code == 200, r.text
    assert r.json()["changed"] is True and r.json()["task"]["status"] == "queued"
    assert r.json()["task"]["attempts"][0]["status"] == "canceled"
    done = rig.ended(job_id)
    assert done["status"] == "completed" and done["frames_done"] == 4, done
    task_id = r.json()["task"]["id"]
    first, second, *more = rig.attempts(task_id)
    assert not more
    # The first render was stopped: it ended soon after the request, before its last frame.
    assert first.status == "canceled" and first.ended_at is not None
    assert utc(first.ended_at).timestamp() - asked < 1.5, (first.ended_at, asked)
    assert "Fra:104" not in first.log_tail and "Fra:101" in first.log_tail
    assert second.status == "completed" and _after(second.started_at, asked)
    assert all(f"Fra:{n}" in second.log_tail for n in range(101, 105))
    # Every frame was stored again by the second attempt, and the bytes in the store are the rendered ones.
    frames = rig.frames(job_id)
    assert sorted(frames) == [101, 102, 103, 104]
    for number, row in frames.items():
        assert _after(row.created_at, asked), number
        data = b"".join(rig.farm.store.open(row.key))
        assert hashlib.sha256(data).hexdigest() == row.sha256 == hashlib.sha256(tiny_png(4, 4, number)).hexdigest()


def test_requeue_of_a_completed_chunk_keeps_its_frames_until_the_new_ones_are_in(rig: Rig) -> None:
    job_id = rig.submit("requeue-done", "1-4", chunk=2)
    assert rig.ended(job_id)["status"] == "completed"
    before = rig.frames(job_id)
    asked = time.time()
    r = rig.http.post(f"/api/v1/jobs/{job_id}/tasks/1/requeue")
    assert r.status_code == 200 and r.json()["job"]["status"] == "queued"
    assert r.json()["job"]["frames_done"] == 4  # the old frames stay listed while the chunk renders again
    done = rig.ended(job_id)
    assert done["status"] == "completed" and done["frames_done"] == 4
    after = rig.frames(job_id)
    assert [after[n].created_at for n in (1, 2)] == [before[n].created_at for n in (1, 2)]  # chunk 0 untouched
    assert all(_after(after[n].created_at, asked) for n in (3, 4))  # chunk 1 stored again
    assert [a.status for a in rig.attempts(r.json()["task"]["id"])] == ["completed", "completed"]


def test_canceled_chunks_leave_the_rest_going_and_the_job_ends_canceled_with_frames_missing(rig: Rig) -> None:
    job_id = rig.submit("cancel-chunks", "201-208", chunk=2)
    rig.wait(lambda: rig.tasks(job_id)[0]["status"] == "running", what="chunk 0 rendering")
    for chunk in (0, 3):  # one rendering, one still queued
        r = rig.http.post(f"/api/v1/jobs/{job_id}/tasks/{chunk}/cancel")
        assert r.status_code == 200 and r.json()["task"]["status"] == "canceled", r.text
        assert r.json()["job"]["status"] in ("queued", "active")
    done = rig.ended(job_id)
    assert done["status"] == "canceled", done
    assert done["status_reason"].startswith("2 of 4 chunk(s) canceled by request")
    assert done["tasks_done"] == 2 and done["frames_done"] < done["frames_total"] == 8
    stored = rig.frames(job_id)
    assert {203, 204, 205, 206} <= set(stored) and not {207, 208} & set(stored)
    assert [t["status"] for t in rig.tasks(job_id)] == ["canceled", "completed", "completed", "canceled"]
    # Retry renders the canceled chunks; then every frame is there and the job is completed.
    assert rig.http.post(f"/api/v1/jobs/{job_id}/retry").status_code == 200
    done = rig.ended(job_id)
    assert done["status"] == "completed" and sorted(rig.frames(job_id)) == list(range(201, 209))


def test_a_raised_priority_is_obeyed_on_the_next_pass(rig: Rig) -> None:
    long_job = rig.submit("long", "1-120", chunk=2)
    urgent = rig.submit("urgent", "301-306", chunk=2)  # newer, same priority: would wait for all of "long"
    r = rig.http.patch(f"/api/v1/jobs/{urgent}", json={"priority": 95})
    assert r.status_code == 200 and r.json()["priority"] == 95
    assert rig.ended(urgent)["status"] == "completed"
    left = [t for t in rig.tasks(long_job) if t["status"] in ("queued", "dispatched", "running")]
    assert left, "the long job finished first: the new priority was not obeyed"
    assert rig.ended(long_job, timeout=60)["status"] == "completed"
