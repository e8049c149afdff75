"""A chunk whose worker is lost again and again cannot loop forever (issue 12): a lost worker counts against
nothing, but after ``LOST_LIMIT`` lost attempts in a row the next loss is a failed attempt of the chunk (never of
the node), with a coded reason. On a real SQLite database, through ``farm.lifecycle.attempts.worker_lost``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from farm.db.engine import Database
from farm.db.models import Job, Task, TaskAttempt
from farm.domain import reasons
from farm.domain.attempts import Fault, Outcome
from farm.domain.states import JobStatus, TaskStatus
from farm.lifecycle import attempts, blocklist
from farm.lifecycle.outcomes import LOST_LIMIT, decide
from farm.lifecycle.transitions import set_job_status, set_task_status
from tests import factories

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


@pytest.fixture()
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'farm.db'}")
    database.migrate()
    yield database
    database.dispose()


def dispatch(db: Database, task_id: str, now: datetime) -> int:
    """Hand the chunk out as ``Dispatcher._assign`` does; returns the attempt's number."""
    with db.session() as s:
        task = s.get(Task, task_id)
        assert task is not None
        job = s.get(Job, task.job_id)
        assert job is not None
        if job.status == JobStatus.QUEUED:
            set_job_status(job, JobStatus.ACTIVE, now)
        set_task_status(task, TaskStatus.DISPATCHED, now, "to slot-1", job)
        task.attempts += 1
        s.add(
            TaskAttempt(
                task_id=task.id, number=task.attempts, node="n1", worker="slot-1", status="dispatched", started_at=now
            )
        )
        return task.attempts


def lose(db: Database, task_id: str, number: int, now: datetime, failed: bool = False) -> None:
    why = reasons.make("worker_lost", why="RayActorError: the actor is unreachable")
    with db.session() as s:
        attempts.worker_lost(s, task_id, number, why, failed, now, attempts.Policy(), attempts.StoreWaits(), 0.0)


def state(db: Database, task_id: str) -> tuple[TaskStatus, int, list[str]]:
    with db.session() as s:
        task = s.get(Task, task_id)
        assert task is not None
        rows = s.scalars(select(TaskAttempt.status).where(TaskAttempt.task_id == task_id).order_by(TaskAttempt.number))
        return task.status, task.failures, list(rows)


def test_the_loss_after_lost_limit_lost_attempts_in_a_row_is_a_failed_attempt_of_the_chunk(db):
    with db.session() as s:
        job = factories.job(s, "acme", frames="1-2", chunk_size=1, now=NOW)
        job_id, task_id = job.id, f"{job.id}-t0"
    now = NOW
    for n in range(1, LOST_LIMIT + 1):
        now += timedelta(seconds=5)
        lose(db, task_id, dispatch(db, task_id, now), now)
        # Each of the first LOST_LIMIT losses counts against nothing: the chunk is simply queued again.
        assert state(db, task_id) == (TaskStatus.QUEUED, 0, ["lost"] * n)
    now += timedelta(seconds=5)
    number = dispatch(db, task_id, now)
    lose(db, task_id, number, now)
    status, failures, statuses = state(db, task_id)
    assert (status, failures) == (TaskStatus.SOFT_FAILED, 1)
    assert statuses == ["lost"] * LOST_LIMIT + ["failed"]
    with db.session() as s:
        attempt = s.scalar(select(TaskAttempt).where(TaskAttempt.task_id == task_id, TaskAttempt.number == number))
        assert attempt is not None and attempt.fault == ""  # whose fault a loss is nobody knows
        assert attempt.reason_code == "lost_in_a_row"
        assert attempt.reason_params is not None and attempt.reason_params["times"] == LOST_LIMIT + 1
        assert attempt.reason.startswith(f"the chunk lost its worker {LOST_LIMIT + 1} times in a row")
        assert "the actor is unreachable" in attempt.reason
        assert blocklist.entries(s, job_id) == []  # never against the node
        job = s.get(Job, job_id)
        assert job is not None and job.status == JobStatus.ACTIVE and job.tasks_runnable == 2


def test_the_count_starts_again_after_an_attempt_that_was_not_lost_and_the_chunk_fails_in_the_end(db):
    with db.session() as s:
        job = factories.job(s, "acme", frames="1", chunk_size=1, settings={"max_attempts": 2}, now=NOW)
        job_id, task_id = job.id, f"{job.id}-t0"
    now = NOW
    for _ in range(LOST_LIMIT - 1):
        now += timedelta(seconds=5)
        lose(db, task_id, dispatch(db, task_id, now), now)
    # A worker that died on a live node: a failure of the node, which breaks the run of losses.
    now += timedelta(seconds=5)
    lose(db, task_id, dispatch(db, task_id, now), now, failed=True)
    pattern = ["lost"] * (LOST_LIMIT - 1) + ["failed"]
    assert state(db, task_id) == (TaskStatus.SOFT_FAILED, 1, pattern)
    for n in range(LOST_LIMIT):  # LOST_LIMIT losses since the failure: still nothing counted
        now += timedelta(seconds=5)
        lose(db, task_id, dispatch(db, task_id, now), now)
        assert state(db, task_id)[:2] == (TaskStatus.QUEUED, 1), n
    now += timedelta(seconds=5)
    lose(db, task_id, dispatch(db, task_id, now), now)  # the next one is the chunk's second failure: max_attempts
    status, failures, statuses = state(db, task_id)
    assert (status, failures) == (TaskStatus.FAILED, 2)
    assert statuses == pattern + ["lost"] * LOST_LIMIT + ["failed"]
    with db.session() as s:
        job = s.get(Job, job_id)
        assert job is not None and job.status == JobStatus.FAILED
        assert "lost its worker" in job.status_reason


def test_the_verdict_on_a_loss_is_pure_policy():
    lost = reasons.make("worker_lost", why="gone")
    assert decide(Outcome.LOST, Fault.NONE, lost, 0, 3, [], lost_in_a_row=LOST_LIMIT - 1).task == (TaskStatus.QUEUED)
    verdict = decide(Outcome.LOST, Fault.NONE, lost, 0, 3, [], lost_in_a_row=LOST_LIMIT)
    assert (verdict.task, verdict.counts_against_chunk, verdict.counts_against_node) == (
        TaskStatus.SOFT_FAILED,
        True,
        False,
    )
    last = decide(Outcome.LOST, Fault.NONE, lost, 2, 3, [], lost_in_a_row=LOST_LIMIT)
    assert last.task is TaskStatus.FAILED and last.reason.startswith("3 attempt(s) failed: the chunk lost its worker")
