"""Issue 16: one chunk's requeue and cancel, a job's priority and bulk actions, through the real API (SQLite, no
scheduler): refusals come from the actions table, another company's job or chunk is a 404, bulk answers per job."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from farm.contract import Role
from farm.db.models import Job, Task, TaskAttempt
from farm.domain.states import JobStatus, TaskStatus
from farm.errors import Conflict
from farm.lifecycle.actions import CHUNK_RULES, ChunkAction, check_chunk, chunk_available
from tests import factories
from tests.tenancy.conftest import Api

J, T = JobStatus, TaskStatus

#: States a chunk and its job are found in together (chunk 0 in the first, chunk 1 completed or queued beside it).
PAIRS: list[tuple[JobStatus, TaskStatus]] = [
    (J.QUEUED, T.QUEUED),
    (J.ACTIVE, T.DISPATCHED),
    (J.ACTIVE, T.RUNNING),
    (J.ACTIVE, T.SOFT_FAILED),
    (J.ACTIVE, T.COMPLETED),
    (J.ACTIVE, T.CANCELED),
    (J.PAUSE_REQUESTED, T.RUNNING),
    (J.PAUSED, T.PAUSED),
    (J.PAUSED, T.COMPLETED),
    (J.CANCEL_REQUESTED, T.RUNNING),
    (J.COMPLETED, T.COMPLETED),
    (J.FAILED, T.FAILED),
    (J.CANCELED, T.CANCELED),
    (J.CANCELED, T.COMPLETED),
]


@pytest.fixture()
def api(tmp_path: Path) -> Iterator[Api]:
    """The API on a fresh SQLite database, no scheduler (as the tenancy tests' fixture)."""
    with factories.api_farm(tmp_path) as farm, factories.client(farm, Api) as http:
        http.db, http.admin_token = farm.db, farm.admin_token
        yield http


def _job(api: Api, job: JobStatus, chunk: TaskStatus, company: str = "acme") -> str:
    """A 2-chunk job: chunk 0 in ``chunk`` (with a running attempt when in flight), chunk 1 completed."""
    with api.db.session() as s:
        row = factories.job(s, company, frames="1-4", chunk_size=2, status=job, tasks=[chunk, T.COMPLETED], attempts=1)
        if chunk in (T.DISPATCHED, T.RUNNING):
            s.add(
                TaskAttempt(
                    task_id=f"{row.id}-t0", number=1, node="n1", worker="w", status="running", started_at=row.created_at
                )
            )
        return row.id


def _task(api: Api, job_id: str, index: int = 0) -> Task:
    with api.db.session() as s:
        task = s.scalar(select(Task).where(Task.job_id == job_id, Task.index == index))
        assert task is not None
        s.expunge(task)
        return task


@pytest.mark.parametrize(("action", "job", "chunk"), list(itertools.product(ChunkAction, J, T)))
def test_the_chunk_table_acts_is_a_no_op_or_refuses_saying_why(action, job, chunk):
    rule = CHUNK_RULES[action]
    assert rule.acts_in <= rule.accepted_in
    if job is J.CANCEL_REQUESTED and action is ChunkAction.CANCEL:
        assert check_chunk(action, "job-x", job, 3, chunk) is False  # the whole job is being canceled already
    elif job not in rule.job_in:
        with pytest.raises(Conflict, match=f"job job-x is {job.value}: {rule.job_refusal}"):
            check_chunk(action, "job-x", job, 3, chunk)
    elif chunk in rule.acts_in:
        assert check_chunk(action, "job-x", job, 3, chunk) is True
    elif chunk in rule.accepted_in:
        assert check_chunk(action, "job-x", job, 3, chunk) is False
    else:
        with pytest.raises(Conflict, match=f"chunk 3 of job job-x is {chunk.value}: {rule.refusal}"):
            check_chunk(action, "job-x", job, 3, chunk)
    assert (action in chunk_available(job, chunk)) is (job in rule.job_in and chunk in rule.acts_in)


@pytest.mark.parametrize(("action", "pair"), list(itertools.product(ChunkAction, PAIRS)))
def test_chunk_actions_through_the_api_follow_the_table(api, action, pair):
    job_status, chunk_status = pair
    job_id = _job(api, job_status, chunk_status)
    listed = api.get(f"/api/v1/jobs/{job_id}/tasks").json()["tasks"][0]
    assert listed["actions"] == [a.value for a in chunk_available(job_status, chunk_status)]
    try:
        expected = check_chunk(action, job_id, job_status, 0, chunk_status)
    except Conflict as exc:
        r = api.post(f"/api/v1/jobs/{job_id}/tasks/0/{action.value}")
        assert r.status_code == 409 and r.json()["detail"] == exc.message
        assert _task(api, job_id).status is chunk_status  # nothing changed
        return
    r = api.post(f"/api/v1/jobs/{job_id}/tasks/{job_id}-t0/{action.value}")  # by id this time
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["changed"] is expected and body["task"]["index"] == 0
    task = _task(api, job_id)
    if not expected:
        assert task.status is chunk_status
        return
    if action is ChunkAction.REQUEUE:
        # A job waiting to pause for this chunk alone is paused now, the chunk with it.
        paused = job_status in (J.PAUSED, J.PAUSE_REQUESTED)
        assert task.status is (T.PAUSED if paused else T.QUEUED) and task.failures == 0
        if job_status in (J.COMPLETED, J.FAILED, J.CANCELED):
            assert body["job"]["status"] == "queued"  # a finished job renders the chunk again
    else:
        assert task.status is T.CANCELED
    if chunk_status in (T.DISPATCHED, T.RUNNING):
        with api.db.session() as s:
            attempt = s.scalar(select(TaskAttempt).where(TaskAttempt.task_id == task.id))
            assert attempt is not None and attempt.status == "canceled" and attempt.ended_at is not None
            assert attempt.reason == f"chunk 0 {'requeued' if action is ChunkAction.REQUEUE else 'canceled'} by request"


def test_a_job_whose_chunk_was_canceled_ends_canceled_not_completed(api):
    job_id = _job(api, J.ACTIVE, T.QUEUED)
    r = api.post(f"/api/v1/jobs/{job_id}/tasks/0/cancel")
    assert r.status_code == 200
    job = r.json()["job"]
    # Chunk 1 was already completed: nothing is left to render, and the job says frames are missing.
    assert job["status"] == "canceled" and job["tasks_done"] == 1 and job["tasks_total"] == 2
    assert job["status_reason"].startswith("1 of 2 chunk(s) canceled by request")
    assert "retry" in job["actions"]
    again = api.post(f"/api/v1/jobs/{job_id}/retry")
    assert again.status_code == 200 and again.json()["status"] == "queued"
    assert _task(api, job_id).status is T.QUEUED


def test_a_running_job_goes_on_after_one_chunk_is_canceled(api):
    with api.db.session() as s:
        row = factories.job(
            s, "acme", frames="1-6", chunk_size=2, status=J.ACTIVE, tasks=[T.RUNNING, T.QUEUED, T.QUEUED]
        )
        job_id = row.id
    r = api.post(f"/api/v1/jobs/{job_id}/tasks/1/cancel")
    assert r.status_code == 200 and r.json()["job"]["status"] == "active"
    assert [t["status"] for t in api.get(f"/api/v1/jobs/{job_id}/tasks").json()["tasks"]] == [
        "running",
        "canceled",
        "queued",
    ]


def test_chunks_and_jobs_of_another_company_are_not_found(api):
    job_id = _job(api, J.ACTIVE, T.RUNNING)
    theirs = api.as_(api.mint("beta"))
    unknown = api.post("/api/v1/jobs/job-nope/tasks/0/requeue", headers=theirs)
    for action in ("requeue", "cancel"):
        r = api.post(f"/api/v1/jobs/{job_id}/tasks/0/{action}", headers=theirs)
        assert r.status_code == 404 and r.json()["detail"] == unknown.json()["detail"].replace("job-nope", job_id)
    assert api.patch(f"/api/v1/jobs/{job_id}", json={"priority": 90}, headers=theirs).status_code == 404
    assert _task(api, job_id).status is T.RUNNING
    with api.db.session() as s:
        assert s.get(Job, job_id).priority == 50
    missing = api.post(f"/api/v1/jobs/{job_id}/tasks/7/requeue")
    assert missing.status_code == 404 and "name one by its index (0 to 1)" in missing.json()["detail"]


def test_an_artist_may_act_on_chunks_of_its_own_company(api):
    job_id = _job(api, J.ACTIVE, T.COMPLETED)
    artist = api.as_(api.mint("acme", Role.ARTIST))
    r = api.post(f"/api/v1/jobs/{job_id}/tasks/0/requeue", headers=artist)
    assert r.status_code == 200 and r.json()["task"]["status"] == "queued"


def test_priority_patch(api):
    job_id = _job(api, J.ACTIVE, T.RUNNING)
    r = api.patch(f"/api/v1/jobs/{job_id}", json={"priority": 90})
    assert r.status_code == 200 and r.json()["priority"] == 90
    assert "priority" in r.json()["actions"]
    for bad in ({"priority": 101}, {"priority": -1}, {"priority": "high"}, {"priority": 5.5}, {}, {"name": "x"}):
        r = api.patch(f"/api/v1/jobs/{job_id}", json=bad)
        assert r.status_code == 422, (bad, r.text)
    done = _job(api, J.COMPLETED, T.COMPLETED)
    r = api.patch(f"/api/v1/jobs/{done}", json={"priority": 90})
    assert r.status_code == 409 and "priority orders only jobs that still render" in r.json()["detail"]


def test_bulk_answers_per_job(api):
    mine = [_job(api, J.QUEUED, T.QUEUED) for _ in range(2)]
    finished = _job(api, J.COMPLETED, T.COMPLETED)
    theirs = _job(api, J.QUEUED, T.QUEUED, company="beta")
    acme = api.as_(api.mint("acme", Role.COMPANY_ADMIN))
    body = {"action": "cancel", "job_ids": [*mine, finished, theirs, "job-nope", mine[0]]}
    r = api.post("/api/v1/jobs/bulk", json=body, headers=acme)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["done"], out["refused"], out["not_found"]) == (2, 1, 2)
    by_id = {j["job_id"]: j for j in out["jobs"]}
    assert [j["job_id"] for j in out["jobs"]] == [*mine, finished, theirs, "job-nope"]  # duplicates once
    assert {by_id[j]["outcome"] for j in mine} == {"done"} and {by_id[j]["status"] for j in mine} == {"canceled"}
    assert by_id[finished]["outcome"] == "refused" and "nothing to cancel" in by_id[finished]["detail"]
    assert by_id[theirs]["outcome"] == by_id["job-nope"]["outcome"] == "not-found"
    assert by_id[theirs]["detail"] == f"job {theirs!r} not found"
    with api.db.session() as s:
        assert s.get(Job, theirs).status is J.QUEUED  # another company's job: untouched

    live = [_job(api, J.ACTIVE, T.RUNNING) for _ in range(2)]
    r = api.post("/api/v1/jobs/bulk", json={"action": "priority", "job_ids": [*live, finished], "priority": 7})
    assert r.status_code == 200 and (r.json()["done"], r.json()["refused"]) == (2, 1)
    with api.db.session() as s:
        assert [s.get(Job, j).priority for j in live] == [7, 7]
    r = api.post("/api/v1/jobs/bulk", json={"action": "pause", "job_ids": live, "now": True})
    assert r.status_code == 200 and {j["status"] for j in r.json()["jobs"]} == {"pause-requested"}
    for bad in (
        {"action": "priority", "job_ids": live},
        {"action": "cancel", "job_ids": live, "priority": 5},
        {"action": "explode", "job_ids": live},
        {"action": "cancel", "job_ids": []},
        {"action": "cancel", "job_ids": [f"job-{i}" for i in range(101)]},
    ):
        r = api.post("/api/v1/jobs/bulk", json=bad)
        assert r.status_code == 422, (bad, r.text)
