"""What a job waits for, decided from the database alone (no scheduler memory): a fresh ``FairShare`` per round
stands for a scheduler restarted between any two rounds."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session

from farm.contract import Role
from farm.db.engine import Database
from farm.db.models import Job
from farm.domain.states import JobStatus
from farm.errors import NotFound, ValidationFailed
from farm.lifecycle import dependencies
from farm.services import dependencies as deps_service
from farm.services.auth import Principal
from scheduler.fairshare import FairShare
from scheduler.pool import Slot
from tests import factories

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture()
def db(tmp_path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'farm.db'}")
    database.migrate()
    try:
        yield database
    finally:
        database.dispose()


def who(job: Job) -> Principal:
    return Principal(token_id="t", company_id=job.company_id, company="acme", role=Role.ARTIST)


def candidates(s: Session) -> list[tuple[str, list[int]]]:
    """(job id, frames) of every chunk a fresh scheduler would consider now (four idle slots)."""
    slots = [Slot(name=f"s{i}", resources={"cpu": 1.0}, actor=None) for i in range(4)]
    return [(job.id, list(task.frames)) for task, job in FairShare().round(s, slots, slots, NOW)]


def test_job_waits_until_upstream_completes_then_runs(db):
    with db.session() as s:
        render = factories.job(s, frames="1-4", chunk_size=2, name="render")
        comp = factories.job(s, frames="1-4", chunk_size=2, name="comp")
        deps_service.link(s, who(comp), comp, [render.id], frame_match=False)
    with db.session() as s:
        assert {j for j, _ in candidates(s)} == {render.id}  # comp's chunks are not even read
        comp = s.get(Job, comp.id)
        assert comp.wait == "job"
        assert comp.status_reason == f"waiting for job {render.id} (render)"
        s.get(Job, render.id).status = JobStatus.COMPLETED  # as the lifecycle would leave it
    with db.session() as s:
        assert {j for j, _ in candidates(s)} == {comp.id}
        comp = s.get(Job, comp.id)
        assert (comp.wait, comp.status_reason) == ("", "")


@pytest.mark.parametrize("ending", [JobStatus.FAILED, JobStatus.CANCELED])
def test_failed_or_canceled_upstream_holds_the_job_until_retried(db, ending):
    with db.session() as s:
        render = factories.job(s, frames="1-2", name="render", status=ending)
        comp = factories.job(s, frames="1-2", name="comp")
        deps_service.link(s, who(comp), comp, [render.id], frame_match=False)
    with db.session() as s:
        assert candidates(s) == []
        comp = s.get(Job, comp.id)
        assert comp.status is JobStatus.QUEUED  # held, not failed: a retry of the render releases it
        assert comp.status_reason.startswith(f"held: job {render.id} (render) {ending.value}; retry it")
        s.get(Job, render.id).status = JobStatus.QUEUED  # the render was retried
    with db.session() as s:
        candidates(s)
        assert s.get(Job, comp.id).status_reason == f"waiting for job {render.id} (render)"


def test_frame_match_releases_chunk_by_chunk(db):
    with db.session() as s:
        render = factories.job(s, frames="1-6", chunk_size=2, name="render", status=JobStatus.ACTIVE)
        comp = factories.job(s, frames="1-8", chunk_size=2, name="comp", priority=90)
        deps_service.link(s, who(comp), comp, [render.id], frame_match=True)
        factories.frames(s, render, [1, 2, 3])
    with db.session() as s:
        got = [frames for job_id, frames in candidates(s) if job_id == comp.id]
        # 1-2 are stored upstream; 3-4 lacks 4; 7-8 are not rendered upstream, so they wait for nothing.
        assert got == [[1, 2], [7, 8]]
        assert s.get(Job, comp.id).status_reason == f"waiting for frames of job {render.id} (render)"
        factories.frames(s, render, [4])
    with db.session() as s:
        assert [f for j, f in candidates(s) if j == comp.id] == [[1, 2], [3, 4], [7, 8]]


def test_unknown_other_company_and_cyclic_dependencies_are_refused(db):
    with db.session() as s:
        a = factories.job(s, frames="1-2", name="a")
        b = factories.job(s, frames="1-2", name="b")
        theirs = factories.job(s, "other-studio", frames="1-2", name="theirs")
        deps_service.link(s, who(b), b, [a.id], frame_match=False)
        with pytest.raises(NotFound, match="not found"):
            deps_service.link(s, who(b), b, ["job-nope"], frame_match=False)
        with pytest.raises(NotFound, match=theirs.id):
            deps_service.link(s, who(b), b, [theirs.id], frame_match=False)
        with pytest.raises(ValidationFailed, match="cycle"):
            deps_service.link(s, who(a), a, [b.id], frame_match=False)
        with pytest.raises(ValidationFailed, match="itself"):
            deps_service.link(s, who(a), a, [a.id], frame_match=False)


def test_decide_is_a_pure_table():
    up = Job(id="job-u", name="u", status=JobStatus.ACTIVE)
    assert dependencies.decide([(up, False)])[0] == "job"
    assert dependencies.decide([(up, True)])[0] == "frames"
    up.status = JobStatus.COMPLETED
    assert dependencies.decide([(up, False), (up, True)]) == ("", "")
