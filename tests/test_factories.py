"""The shared test factories build what the farm itself would: a job made by ``tests.factories.job`` has the tasks
and counters of the same job submitted through the API, and frames written by hand move the counters."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from farm.db.models import Job, Task
from farm.domain.states import JobStatus, TaskStatus
from tests import factories

COUNTERS = ("tasks_total", "tasks_runnable", "tasks_in_flight", "tasks_completed", "tasks_failed", "frames_done")


def shape(s, job_id: str) -> tuple[list[tuple[int, list[int], TaskStatus]], dict[str, int], int]:
    job = s.get(Job, job_id)
    tasks = s.scalars(select(Task).where(Task.job_id == job_id).order_by(Task.index))
    return [(t.index, t.frames, t.status) for t in tasks], {c: getattr(job, c) for c in COUNTERS}, job.frames_total


def test_a_factory_job_is_the_job_the_api_makes(tmp_path):
    blend = b"BLENDER-v500" + b"\x00" * 64
    digest = hashlib.sha256(blend).hexdigest()
    with factories.api_farm(tmp_path) as farm, factories.client(farm) as http:
        assert http.put(f"/api/v1/blobs/{digest}", content=blend).is_success
        body = {
            "name": "shot",
            "blend_file": "scene.blend",
            "manifest": {"scene.blend": {"sha256": digest, "size": len(blend)}},
            "frames": "1-5,9,20-22",
            "chunk_size": 2,
        }
        response = http.post("/api/v1/jobs", json=body)
        assert response.status_code == 201, response.text
        with farm.db.session() as s:
            made = factories.job(s, "default", frames="1-5,9,20-22", chunk_size=2)
            assert shape(s, made.id) == shape(s, response.json()["id"])
            assert made.id.startswith("job-") and made.status is JobStatus.QUEUED
        # The API reads the factory's job as its own.
        shown = http.get(f"/api/v1/jobs/{made.id}")
        assert shown.status_code == 200, shown.text
        assert shown.json()["frames_total"] == 9


def test_task_statuses_and_frames_move_the_counters(tmp_path):
    with factories.api_farm(tmp_path) as farm, farm.db.session() as s:
        job = factories.job(
            s, "acme", frames="1-6", chunk_size=2, status="active", tasks=["completed", "running", "soft-failed"]
        )
        assert [t for t in shape(s, job.id)[1].values()] == [3, 1, 1, 1, 0, 0]
        factories.frames(s, job, [1, 2], task_id=f"{job.id}-t0")
        assert job.frames_done == 2 and job.status is JobStatus.ACTIVE
        assert s.get(Task, f"{job.id}-t2").status is TaskStatus.SOFT_FAILED
        with pytest.raises(ValueError, match="2 task statuses for 3 chunks"):
            factories.job(s, "acme", frames="1-6", chunk_size=2, tasks=["queued", "queued"])


def test_tokens_and_companies(tmp_path):
    with factories.api_farm(tmp_path) as farm:
        with farm.db.session() as s:
            studio = factories.company(s, "studio", id="c-studio", gpu_hours_budget=2.0)
            assert factories.company(s, "studio").id == "c-studio"  # found, not made again
            artist = factories.token(s, "studio")
        with factories.client(farm, auth=False) as http:
            me = http.get("/api/v1/jobs", headers={"Authorization": f"Bearer {artist}"})
            assert me.status_code == 200, me.text
            assert http.get("/api/v1/jobs").status_code == 401
        assert studio.gpu_hours_budget == 2.0
