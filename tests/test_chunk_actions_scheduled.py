"""Issue 16 through the real scheduler: a Dispatcher over two sleep-renderer slots on the session farm's Ray, and
the API app on the same database (its notify wakes the dispatcher). A requeued running chunk is stopped and
rendered again (attempts, logs and frame bytes say so); a canceled chunk leaves the rest going and the job ends
canceled with its frames missing, not "completed"; a priority raised by PATCH is obeyed on the next pass."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from datetime import datetime

import pytest

from farm.clock import utc
from tests.scheduled import Rig, scheduled
from workers.renderer import tiny_png

pytestmark = [pytest.mark.ray]

#: Frames 101-104 take 0.8 s each (a chunk long enough to requeue while it renders), 201-208 0.3 s, others 0.05 s.
RENDERER = "sleep:0.05;slow:101-104=0.8;slow:201-208=0.3"


@pytest.fixture(scope="module")
def rig(farm: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    with scheduled(tmp_path_factory.mktemp("chunk-actions"), "chunk-actions", RENDERER) as running:
        yield running


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
