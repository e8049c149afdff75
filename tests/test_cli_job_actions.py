"""Issue 16 from the CLI against a live API over HTTP: `farm requeue|cancel JOB --chunk N`, `farm priority`, and
several job ids making one bulk request (`farm cancel J1 J2`, `farm pause …`, `farm priority J1 J2 --set N`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from farm.cli.main import app
from farm.contract import Role
from farm.db.models import Job, Task
from farm.domain.states import JobStatus, TaskStatus
from tests import factories

J, T = JobStatus, TaskStatus


class Live:
    def __init__(self, farm: factories.ApiFarm, url: str) -> None:
        self.farm, self.url = farm, url
        with farm.db.session() as s:
            self.token = factories.token(s, "acme", Role.ARTIST)

    def cli(self, *args: str) -> Any:
        env = {"FARM_URL": self.url, "FARM_TOKEN": self.token}
        return CliRunner().invoke(app, list(args), env=env)

    def job(self, tasks: list[TaskStatus], status: JobStatus = J.ACTIVE, company: str = "acme") -> str:
        with self.farm.db.session() as s:
            frames = f"1-{2 * len(tasks)}"
            return factories.job(s, company, frames=frames, chunk_size=2, status=status, tasks=tasks).id

    def row(self, job_id: str) -> tuple[str, int, list[str]]:
        with self.farm.db.session() as s:
            job = s.get(Job, job_id)
            tasks = s.query(Task).filter(Task.job_id == job_id).order_by(Task.index)
            return job.status.value, job.priority, [t.status.value for t in tasks]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with factories.api_farm(tmp_path_factory.mktemp("cli-actions")) as farm, factories.serve(farm.app) as url:
        yield Live(farm, url)


def test_requeue_and_cancel_one_chunk(live: Live) -> None:
    job = live.job([T.COMPLETED, T.QUEUED, T.RUNNING])
    r = live.cli("requeue", job, "--chunk", "0")
    assert r.exit_code == 0, r.output
    assert f"job {job} chunk 0 (frames 1-2): queued" in r.output and f"job {job}: active" in r.output
    r = live.cli("cancel", job, "--chunk", "1", "--chunk", f"{job}-t2")
    assert r.exit_code == 0, r.output
    assert live.row(job)[2] == ["queued", "canceled", "canceled"]
    r = live.cli("cancel", job, "--chunk", "1")
    assert r.exit_code == 0 and "(nothing to do)" in r.output
    r = live.cli("requeue", job, "--chunk", "9")
    assert r.exit_code == 1 and "has no chunk '9'" in r.output
    r = live.cli("cancel", job, job, "--chunk", "1")
    assert r.exit_code == 2 and "exactly one job id" in r.output
    theirs = live.job([T.QUEUED], company="beta")
    r = live.cli("cancel", theirs, "--chunk", "0")
    assert r.exit_code == 1 and "not found" in r.output
    assert live.row(theirs)[2] == ["queued"]


def test_priority_one_job_and_many(live: Live) -> None:
    one, two = live.job([T.QUEUED]), live.job([T.RUNNING])
    r = live.cli("priority", one, "80")
    assert r.exit_code == 0 and f"job {one}: priority 80 (active)" in r.output, r.output
    r = live.cli("priority", one, two, "--set", "20")
    assert r.exit_code == 0, r.output
    assert "priority: done for 2 job(s), refused for 0, not found 0" in r.output
    assert live.row(one)[1] == live.row(two)[1] == 20
    for bad in (["priority", one], ["priority", one, "high"], ["priority", one, "101"]):
        r = live.cli(*bad)
        assert r.exit_code == 2 and "priority from 0 to 100" in r.output, bad
    assert live.cli("priority", one, "--set", "300").exit_code == 2


def test_several_jobs_make_one_bulk_request_with_a_line_each(live: Live) -> None:
    mine = [live.job([T.QUEUED]), live.job([T.RUNNING])]
    finished = live.job([T.COMPLETED], status=J.COMPLETED)
    theirs = live.job([T.QUEUED], company="beta")
    r = live.cli("pause", *mine)
    assert r.exit_code == 0, r.output
    assert {live.row(j)[0] for j in mine} == {"paused", "pause-requested"}
    r = live.cli("resume", *mine)
    assert r.exit_code == 0, r.output
    r = live.cli("cancel", *mine, finished, theirs)
    assert r.exit_code == 1, r.output  # not every job took it
    lines = {line.split(":")[0]: line for line in r.output.splitlines() if line.startswith("job-")}
    assert "done" in lines[mine[0]] and "refused" in lines[finished] and "not-found" in lines[theirs]
    assert "cancel: done for 2 job(s), refused for 1, not found 1" in r.output
    assert live.row(theirs)[0] == "active" and live.row(finished)[0] == "completed"  # untouched
    assert {live.row(j)[0] for j in mine} <= {"canceled", "cancel-requested"}
    r = live.cli("cancel", finished)  # one job: the single-job route and its message, as before
    assert r.exit_code == 1 and "nothing to cancel" in r.output
