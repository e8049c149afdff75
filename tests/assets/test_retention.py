"""Issue 15, retention: ``farm admin gc`` expires finished jobs older than their company's ``retention_days``, with
their outputs, and nothing else. Real rows (migrated SQLite), a real S3 server (moto), the API over TestClient.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from farm.cli.main import app
from farm.db.models import Frame, Job, Task, TaskAttempt, UsageEntry
from farm.domain.states import JobStatus, TaskStatus
from farm.metering.storage_usage import bytes_by_company
from farm.services import gc
from farm.services.gc import expired
from storage.base import output_key
from storage.s3 import S3Store
from tests import factories
from tests.db.backends import db_url, postgres  # noqa: F401  # fixtures: SQLite and PostgreSQL
from tests.s3_server import S3ServerProcess


@dataclass
class Farm:
    http: TestClient
    farm: factories.ApiFarm
    store: S3Store
    now: datetime


@pytest.fixture()
def farm(s3_server: S3ServerProcess, tmp_path: Path) -> Iterator[Farm]:
    yield from make_farm(s3_server, tmp_path)


def make_farm(s3_server: S3ServerProcess, tmp_path: Path, **settings: object) -> Iterator[Farm]:
    endpoint, access, secret = s3_server.credentials
    store = S3Store(endpoint, access, secret, f"retention-{uuid.uuid4().hex[:12]}", retries=1, backoff_s=0.05)
    try:
        with factories.api_farm(tmp_path, store, **settings) as farm, factories.client(farm) as http:
            yield Farm(http, farm, store, farm.clock.now())
    finally:
        store.close()


def finished_job(f: Farm, company: str, status: JobStatus, days_ago: float, frames: int = 2) -> tuple[str, str]:
    """A job of ``company`` that ended ``days_ago`` with ``frames`` stored frames, a thumbnail and a preview in the
    store, an attempt per chunk and a usage row; returns (company id, job id)."""
    ended = f.now - timedelta(days=days_ago)
    with f.farm.db.session() as s:
        task_status = TaskStatus.COMPLETED if status is JobStatus.COMPLETED else TaskStatus.FAILED
        row = factories.job(
            s, company, frames=f"1-{frames}", chunk_size=1, status=status, tasks=[task_status] * frames, now=ended
        )
        row.finished_at = ended
        company_id, job_id = row.company_id, row.id
        for number in range(1, frames + 1):
            data = f"{job_id} frame {number}".encode()
            key = output_key(company_id, job_id, f"render/shot_{number:04d}.png")
            f.store.put_stream(key, io.BytesIO(data), len(data))
            factories.frames(s, row, [number], now=ended, key=key, size=len(data), sha256=_sha(data))
        for name in ("thumbs/0001.jpg", "preview.mp4"):
            f.store.put_stream(output_key(company_id, job_id, name), io.BytesIO(b"extra"), 5)
        for task in s.scalars(select(Task).where(Task.job_id == job_id)):
            s.add(TaskAttempt(task_id=task.id, number=1, node="n", worker="w", status="completed", started_at=ended))
            s.add(
                UsageEntry(
                    company_id=company_id, job_id=job_id, task_id=task.id, attempt=1, resource="cpu", count=1,
                    started_at=ended, ended_at=ended, seconds=1.0, outcome="completed",
                )
            )  # fmt: skip
    return company_id, job_id


def live_job(f: Farm, company: str, status: JobStatus, days_ago: float) -> tuple[str, str]:
    """A job that is not over (running, paused, queued), created long ago, with one frame stored; its
    ``finished_at`` is set as a retried job keeps it from its first end."""
    long_ago = f.now - timedelta(days=days_ago)
    with f.farm.db.session() as s:
        row = factories.job(s, company, frames="1-2", status=status, now=long_ago, finished_at=long_ago)
        company_id, job_id = row.company_id, row.id
        key = output_key(company_id, job_id, "frame_000001.png")
        f.store.put_stream(key, io.BytesIO(b"in progress"), 11)
        factories.frames(s, row, [1], now=long_ago, key=key, size=11, sha256=_sha(b"in progress"))
    return company_id, job_id


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def objects(f: Farm, company_id: str, job_id: str) -> dict[str, bytes]:
    return {i.key: b"".join(f.store.open(i.key)) for i in f.store.list(f"outputs/{company_id}/{job_id}/")}


def rows(f: Farm, job_id: str) -> tuple[int, int, int, int]:
    with f.farm.db.session() as s:
        tasks = select(Task.id).where(Task.job_id == job_id)
        return (
            s.scalar(select(func.count()).select_from(Job).where(Job.id == job_id)) or 0,
            s.scalar(select(func.count()).select_from(Task).where(Task.job_id == job_id)) or 0,
            s.scalar(select(func.count()).select_from(Frame).where(Frame.job_id == job_id)) or 0,
            s.scalar(select(func.count()).select_from(TaskAttempt).where(TaskAttempt.task_id.in_(tasks))) or 0,
        )


def set_retention(f: Farm, name: str, days: float | None) -> None:
    response = f.http.patch(f"/api/v1/admin/companies/{name}", json={"retention_days": days})
    assert response.status_code == 200, response.text
    assert response.json()["retention_days"] == days


def test_gc_expires_only_finished_jobs_past_their_companys_retention(farm: Farm) -> None:
    f = farm
    old = finished_job(f, "short", JobStatus.COMPLETED, days_ago=40)
    old_failed = finished_job(f, "short", JobStatus.FAILED, days_ago=31)
    recent = finished_job(f, "short", JobStatus.COMPLETED, days_ago=10)
    running = live_job(f, "short", JobStatus.ACTIVE, days_ago=400)
    paused = live_job(f, "short", JobStatus.PAUSED, days_ago=400)
    keeps_all = finished_job(f, "forever", JobStatus.COMPLETED, days_ago=4000)
    other = finished_job(f, "yearly", JobStatus.CANCELED, days_ago=40)
    set_retention(f, "short", 30)
    set_retention(f, "yearly", 365)
    kept = [recent, running, paused, keeps_all, other]
    before = {job: objects(f, *job) for job in [old, old_failed, *kept]}
    assert all(before.values())

    # A dry run names the expired jobs and their files, and changes nothing.
    report = f.http.post("/api/v1/admin/gc", params={"retention_days": 30}).json()
    assert sorted(report["expired_jobs"]) == sorted([f"short/{old[1]}", f"short/{old_failed[1]}"])
    assert report["output_objects"] == 8 and report["applied"] is False
    assert report["output_bytes"] == sum(len(b) for job in (old, old_failed) for b in before[job].values())
    assert {job: objects(f, *job) for job in before} == before

    report = f.http.post("/api/v1/admin/gc", params={"retention_days": 30, "apply": True}).json()
    assert report["applied"] is True and len(report["expired_jobs"]) == 2 and report["output_objects"] == 8
    for job in (old, old_failed):
        assert objects(f, *job) == {}, job
        assert rows(f, job[1]) == (0, 0, 0, 0), job
        assert f.http.get(f"/api/v1/jobs/{job[1]}").status_code == 404
    for job in kept:  # byte for byte, rows too
        assert objects(f, *job) == before[job], job
        assert rows(f, job[1])[0] == 1 and rows(f, job[1])[2] >= 1, job
    with f.farm.db.session() as s:  # billing history stays
        assert s.scalar(select(func.count()).select_from(UsageEntry).where(UsageEntry.job_id == old[1])) == 2

    # Metered storage follows: the sampler counts what remains.
    held = bytes_by_company(f.store)
    assert held[old[0]] == sum(len(b) for job in (recent, running, paused) for b in before[job].values())

    # Nothing left to expire; a second pass is a no-op.
    again = f.http.post("/api/v1/admin/gc", params={"apply": True}).json()
    assert again["expired_jobs"] == [] and again["output_objects"] == 0


def test_retention_is_set_checked_and_removed_per_company(farm: Farm) -> None:
    f = farm
    job = finished_job(f, "studio", JobStatus.COMPLETED, days_ago=3)
    for bad in (0, 0.5, -1, 100_000, "soon"):
        response = f.http.patch("/api/v1/admin/companies/studio", json={"retention_days": bad})
        assert response.status_code == 422, (bad, response.text)
        assert "retention_days" in response.text
    set_retention(f, "studio", 2)
    with f.farm.db.session() as s:
        assert expired(s, f.now) == [job]
        assert expired(s, f.now - timedelta(days=2)) == []  # two days ago the job was within it
    set_retention(f, "studio", None)  # keep everything again
    report = f.http.post("/api/v1/admin/gc", params={"apply": True}).json()
    assert report["expired_jobs"] == [] and objects(f, *job)

    # Only platform admins collect.
    with f.farm.db.session() as s:
        artist = factories.token(s, "studio")
    response = f.http.post("/api/v1/admin/gc", headers={"Authorization": f"Bearer {artist}"})
    assert response.status_code == 403


def test_cli_sets_a_retention_and_gc_expires_with_it(farm: Farm, monkeypatch: pytest.MonkeyPatch) -> None:
    f = farm
    old = finished_job(f, "cli-studio", JobStatus.COMPLETED, days_ago=9)
    recent = finished_job(f, "cli-studio", JobStatus.COMPLETED, days_ago=1)
    with factories.serve(f.farm.app) as url:
        monkeypatch.setenv("FARM_URL", url)
        monkeypatch.setenv("FARM_TOKEN", f.farm.admin_token)
        runner = CliRunner()
        result = runner.invoke(app, ["admin", "company", "update", "cli-studio", "--retention-days", "7"])
        assert result.exit_code == 0, result.output
        result = runner.invoke(app, ["admin", "gc"])
        assert result.exit_code == 0, result.output
        assert f"would delete expired job cli-studio/{old[1]}" in result.output
        assert "1 expired job(s) with 4 output file(s)" in result.output
        result = runner.invoke(app, ["admin", "gc", "--apply", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["expired_jobs"] == [f"cli-studio/{old[1]}"]
        result = runner.invoke(app, ["admin", "company", "update", "cli-studio", "--unlimited", "retention-days"])
        assert result.exit_code == 0, result.output
    assert objects(f, *old) == {} and objects(f, *recent)


def test_a_job_revived_after_the_plan_is_not_expired(
    s3_server: S3ServerProcess,
    tmp_path: Path,
    db_url: str,  # noqa: F811 - the fixture imported above
) -> None:
    for f in make_farm(s3_server, tmp_path, database_url=db_url):  # SQLite and PostgreSQL (rows locked)
        revived = finished_job(f, "racy", JobStatus.FAILED, days_ago=50)
        gone = finished_job(f, "racy", JobStatus.COMPLETED, days_ago=50)
        set_retention(f, "racy", 30)
        with f.farm.db.session() as s:
            found = gc.plan(s, f.store, f.now, 30.0)
        assert sorted(found.expired_jobs) == sorted([revived, gone])
        with f.farm.db.session() as s:  # a retry lands between the plan and the deletion
            s.get_one(Job, revived[1]).status = JobStatus.ACTIVE
        assert gc._expire(f.farm.db, f.store, found, f.now) == 0
        assert found.expired_jobs == [gone]
        assert rows(f, revived[1])[0] == 1 and objects(f, *revived)
        assert rows(f, gone[1]) == (0, 0, 0, 0) and objects(f, *gone) == {}
