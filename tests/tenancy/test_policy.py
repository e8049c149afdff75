"""The fair-share ordering on its own: guarantees, starvation, caps, priority within a company (no Ray)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from farm.clock import SystemClock
from farm.contract import JobCreate, ManifestEntry, Role
from farm.db.engine import Database
from farm.db.models import Blob, Task, TaskAttempt
from farm.services import jobs
from farm.services.auth import Principal, ensure_company
from scheduler.fairshare import FairShare
from scheduler.pool import Slot
from tests.tenancy.conftest import sha

BLEND = b"BLENDER-v500 policy"


@pytest.fixture()
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'farm.db'}")
    database.migrate()
    yield database
    database.dispose()


def company(db, name, **limits):
    now = SystemClock().now()
    with db.session() as s:
        c = ensure_company(s, name, now)
        for k, v in limits.items():
            setattr(c, k, v)
        s.add(Blob(company_id=c.id, sha256=sha(BLEND), size=len(BLEND), created_at=now))
        return Principal("t", c.id, c.name, Role.ARTIST)


def submit(db, who, chunks=4, priority=50, name="job"):
    spec = JobCreate(
        name=name,
        blend_file="s.blend",
        manifest={"s.blend": ManifestEntry(sha256=sha(BLEND), size=len(BLEND))},
        frames=f"1-{chunks}",
        chunk_size=1,
        priority=priority,
    )
    with db.session() as s:
        return jobs.create_job(s, who, spec, SystemClock().now()).id


def used(db, who, seconds, worker="w0"):
    """Pretend the company already used ``seconds`` of slot-time in the window (one finished attempt)."""
    job_id = submit(db, who, chunks=1, name="history")
    now = SystemClock().now()
    with db.session() as s:
        task = s.scalar(select(Task).where(Task.job_id == job_id))
        task.status = "completed"
        s.add(TaskAttempt(task_id=task.id, number=1, worker=worker, status="completed",
                          started_at=now - timedelta(seconds=seconds), ended_at=now))


def slots(n):
    return [Slot(name=f"w{i}", resources={"cpu": 1.0}, actor=None) for i in range(n)]


def order(db, pool, policy=None, picks=4):
    """Companies in the order the policy hands out ``picks`` slots."""
    policy = policy or FairShare()
    out = []
    with db.session() as s:
        rnd = policy.round(s, pool, [sl for sl in pool if sl.idle], SystemClock().now())
        for _task, job in rnd:
            rnd.taken(job, pool[0])
            out.append((rnd.states[job.company_id].company.name, job.name))
            if len(out) == picks:
                break
    return out


def test_furthest_below_share_goes_first(db):
    heavy, light = company(db, "heavy"), company(db, "light")
    used(db, heavy, 100)
    used(db, light, 10)
    submit(db, heavy), submit(db, light)
    assert order(db, slots(2), picks=1)[0][0] == "light"


def test_share_weights_the_usage(db):
    big, small = company(db, "big", cpu_share=20.0), company(db, "small", cpu_share=1.0)
    used(db, big, 100)  # 100 / 20 = 5 per share
    used(db, small, 10)  # 10 / 1 = 10 per share
    submit(db, big), submit(db, small)
    assert order(db, slots(2), picks=1)[0][0] == "big"


def test_guaranteed_minimum_beats_share(db):
    greedy, guaranteed = company(db, "greedy"), company(db, "guaranteed", min_slots=1)
    used(db, guaranteed, 1000)
    submit(db, greedy), submit(db, guaranteed)
    assert order(db, slots(2), picks=1)[0][0] == "guaranteed"


def test_burst_cap_stops_a_company(db):
    alone = company(db, "alone", max_slots=2)
    submit(db, alone, chunks=10)
    pool = slots(4)
    assert len(order(db, pool, picks=4)) == 2


def test_starving_company_goes_first(db):
    fresh, old = company(db, "fresh"), company(db, "old")
    used(db, old, 1000)
    submit(db, fresh)
    old_job = submit(db, old)
    with db.session() as s:
        for task in s.scalars(select(Task).where(Task.job_id == old_job)):
            task.updated_at = SystemClock().now() - timedelta(seconds=700)
    assert order(db, slots(2), FairShare(starvation_s=600), picks=1)[0][0] == "old"


def test_priority_then_age_within_a_company(db):
    studio = company(db, "studio")
    submit(db, studio, chunks=1, priority=10, name="low")
    submit(db, studio, chunks=1, priority=90, name="high")
    submit(db, studio, chunks=1, priority=90, name="high-later")
    assert [name for _c, name in order(db, slots(3), picks=3)] == ["high", "high-later", "low"]


def test_companies_alternate_within_one_round(db):
    a, b = company(db, "a"), company(db, "b")
    submit(db, a, chunks=5), submit(db, b, chunks=5)
    names = [c for c, _ in order(db, slots(4), picks=4)]
    assert sorted(names) == ["a", "a", "b", "b"]
