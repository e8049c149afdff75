"""Claims on PostgreSQL: two schedulers racing over the same queue never hand out one chunk twice, and a job an
API replica holds (e.g. while canceling it) is skipped, never waited for."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from farm.clock import SystemClock
from farm.db.engine import Database
from farm.db.models import Job, Task, TaskAttempt
from scheduler import claims
from scheduler.dispatcher import Dispatcher
from scheduler.pool import Slot, WorkerPool
from tests import factories

pytest_plugins = ["tests.db.backends"]  # db_url (SQLite and PostgreSQL), postgres


class FakeActor:
    """The Ray actor seam: records what it was asked to render and returns a stand-in object ref."""

    def __init__(self) -> None:
        self.render = self
        self.poll = self
        self.cancel = self

    def remote(self, *args: object) -> object:
        return object()


def fake_pool(name: str, slots: int) -> WorkerPool:
    pool = WorkerPool(lambda n, r: None)  # type: ignore[arg-type,return-value]
    for i in range(slots):
        pool.slots.append(Slot(name=f"{name}/slot-{i}", resources={"cpu": 1.0}, actor=FakeActor(), node=name))
    return pool


def seed(db: Database, jobs: int, tasks_per_job: int) -> list[str]:
    ids = []
    with db.session() as s:
        acme = factories.company(s, "acme", id="c-acme")
        for j in range(jobs):
            job = factories.job(s, acme, frames=f"1-{tasks_per_job}", id=f"job-{j}", name=f"shot {j}")
            ids += [f"{job.id}-t{i}" for i in range(tasks_per_job)]
    return ids


@pytest.fixture()
def pg_db(postgres):
    db = Database(postgres.create_database("claims"))
    db.migrate()
    yield db
    db.dispose()


def test_two_concurrent_claimers_never_hand_out_the_same_task(pg_db):
    task_ids = seed(pg_db, jobs=4, tasks_per_job=12)
    handed: Counter[str] = Counter()
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(2)

    def scheduler(name: str) -> None:
        # Each "scheduler" has its own pool and database connection pool, as two processes would.
        db = Database(pg_db.url)
        dispatcher = Dispatcher(db, fake_pool(name, 3), SystemClock())
        try:
            barrier.wait()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with db.session() as s:  # one dispatch pass: its own transaction, as in the loop
                    claims.hold_sqlite(s)
                    dispatcher._dispatch(s)
                busy = [slot for slot in dispatcher.pool.slots if slot.task_id is not None]
                with lock:
                    handed.update(slot.task_id for slot in busy)
                for slot in busy:
                    slot.release()  # the chunk stays dispatched in the database; the slot takes another
                with db.session() as s:
                    if not s.scalar(select(func.count()).select_from(Task).where(Task.status == "queued")):
                        return
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=scheduler, args=(f"sched-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    assert errors == []
    assert set(handed) == set(task_ids)
    assert [t for t, n in handed.items() if n > 1] == []
    with pg_db.session() as s:
        assert {t.attempts for t in s.scalars(select(Task))} == {1}
        assert s.scalar(select(func.count()).select_from(TaskAttempt)) == len(task_ids)


def test_a_held_row_is_skipped_not_waited_for(pg_db):
    seed(pg_db, jobs=1, tasks_per_job=2)
    with pg_db.session() as first:
        job = first.get(Job, "job-0")
        task = first.get(Task, "job-0-t0")
        assert claims.claim(first, job, task)  # holds job-0 and job-0-t0 until this block ends
        task.status = "dispatched"
        with pg_db.session() as second:
            started = time.monotonic()
            other_job, other_task = second.get(Job, "job-0"), second.get(Task, "job-0-t1")
            assert not claims.claim(second, other_job, other_task)  # job-0 is held: skip, do not block
            assert time.monotonic() - started < 2.0
    with pg_db.session() as s:
        job = s.get(Job, "job-0")
        assert not claims.claim(s, job, s.get(Task, "job-0-t0"))  # already dispatched
        assert claims.claim(s, job, s.get(Task, "job-0-t1"))


def test_a_job_the_api_is_canceling_is_not_dispatched_meanwhile(pg_db):
    seed(pg_db, jobs=1, tasks_per_job=1)
    with pg_db.session() as api:
        api.scalar(select(Job).where(Job.id == "job-0").with_for_update())  # what jobs.get_job(lock=True) does
        api.get(Job, "job-0").status = "cancel-requested"
        with pg_db.session() as scheduler:
            assert not claims.claim(scheduler, scheduler.get(Job, "job-0"), scheduler.get(Task, "job-0-t0"))
    with pg_db.session() as scheduler:  # after the cancel committed: the job is no longer dispatchable
        assert not claims.claim(scheduler, scheduler.get(Job, "job-0"), scheduler.get(Task, "job-0-t0"))
