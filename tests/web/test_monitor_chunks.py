"""Issue 16 in the monitor: a chunk's Requeue and Cancel buttons, the job's priority edit and the bulk priority,
each through the API's own code, with CSRF, and another company's job a 404."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from farm.db.models import Job, Task
from farm.domain.states import TaskStatus
from tests import factories
from tests.web.test_monitor import Monitor, csrf_of


def _job(mon: Monitor, company: str, tasks: list[TaskStatus], status: str = "active") -> str:
    with mon.db.session() as s:
        frames = f"1-{2 * len(tasks)}"
        return factories.job(s, company, frames=frames, chunk_size=2, status=status, tasks=tasks, name="shot").id


def _statuses(mon: Monitor, job_id: str) -> list[str]:
    with mon.db.session() as s:
        return [t.status.value for t in s.query(Task).filter(Task.job_id == job_id).order_by(Task.index)]


def test_chunk_buttons_follow_the_table_and_post_with_csrf(mon: Monitor) -> None:
    job = _job(mon, "acme", [TaskStatus.COMPLETED, TaskStatus.QUEUED, TaskStatus.FAILED])
    mon.login(mon.company_token("acme"))
    html = mon.http.get(f"/jobs/{job}").text
    assert f'id="chunk-actions" method="post" action="/jobs/{job}/chunks"' in html
    rows = dict(re.findall(r'<tr data-task="(\d+)">(.*?)</tr>', html, re.S))
    assert 'name="requeue"' in rows["0"] and 'name="cancel"' not in rows["0"]  # completed: render again only
    assert 'name="cancel"' in rows["1"] and 'name="requeue"' not in rows["1"]  # queued: leave it out only
    assert 'name="requeue"' in rows["2"]
    assert f'form="chunk-actions" name="requeue" value="{job}-t0"' in rows["0"]
    # No CSRF token: refused, nothing changes.
    assert mon.http.post(f"/jobs/{job}/chunks", data={"requeue": f"{job}-t0"}).status_code == 403
    assert _statuses(mon, job) == ["completed", "queued", "failed"]
    csrf = csrf_of(html)
    r = mon.http.post(f"/jobs/{job}/chunks", data={"csrf": csrf, "cancel": f"{job}-t1"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith(f"/jobs/{job}")
    r = mon.http.post(f"/jobs/{job}/chunks", data={"csrf": csrf, "requeue": "0"}, follow_redirects=False)
    assert r.status_code == 303
    assert _statuses(mon, job) == ["queued", "canceled", "failed"]
    # A refusal is a page saying why (in the layout), not a 500.
    r = mon.http.post(f"/jobs/{job}/chunks", data={"csrf": csrf, "cancel": f"{job}-t2"})
    assert r.status_code == 409 and "only chunks still to render can be canceled" in r.text
    r = mon.http.post(f"/jobs/{job}/chunks", data={"csrf": csrf})
    assert 400 <= r.status_code < 500 and "Requeue or Cancel" in r.text


def test_another_companys_chunks_and_priority_are_not_found(mon: Monitor) -> None:
    theirs = _job(mon, "beta", [TaskStatus.RUNNING, TaskStatus.QUEUED])
    mon.login(mon.company_token("acme"))
    csrf = csrf_of(mon.http.get("/jobs").text)
    r = mon.http.post(f"/jobs/{theirs}/chunks", data={"csrf": csrf, "cancel": "1"})
    assert r.status_code == 404
    r = mon.http.post(f"/jobs/{theirs}/priority", data={"csrf": csrf, "priority": "99"})
    assert r.status_code == 404
    assert _statuses(mon, theirs) == ["running", "queued"]
    with mon.db.session() as s:
        assert s.get(Job, theirs).priority == 50


def test_priority_edit_on_the_job_page(mon: Monitor) -> None:
    job = _job(mon, "acme", [TaskStatus.RUNNING, TaskStatus.QUEUED])
    done = _job(mon, "acme", [TaskStatus.COMPLETED], status="completed")
    mon.login(mon.company_token("acme"))
    html = mon.http.get(f"/jobs/{job}").text
    assert f'action="/jobs/{job}/priority"' in html and 'id="priority-value"' in html
    assert 'id="priority-form" hidden' in mon.http.get(f"/jobs/{done}").text  # nothing left to order (shown live)
    assert mon.http.post(f"/jobs/{job}/priority", data={"priority": "80"}).status_code == 403
    csrf = csrf_of(html)
    r = mon.http.post(f"/jobs/{job}/priority", data={"csrf": csrf, "priority": "80"}, follow_redirects=False)
    assert r.status_code == 303
    for bad in ("101", "-3", "high", ""):
        r = mon.http.post(f"/jobs/{job}/priority", data={"csrf": csrf, "priority": bad})
        assert r.status_code == 422 and "from 0 to 100" in r.text, bad
    with mon.db.session() as s:
        assert s.get(Job, job).priority == 80
    assert re.search(r'id="job-priority" data-f="priority">80<', mon.http.get(f"/jobs/{job}").text)


def test_bulk_priority_from_the_jobs_list(mon: Monitor) -> None:
    mine = [_job(mon, "acme", [TaskStatus.QUEUED]) for _ in range(2)]
    done = _job(mon, "acme", [TaskStatus.COMPLETED], status="completed")
    theirs = _job(mon, "beta", [TaskStatus.QUEUED])
    mon.login(mon.company_token("acme"))
    html = mon.http.get("/jobs").text
    assert '<option value="priority">' in html and 'id="bulk-priority"' in html
    form = {"csrf": csrf_of(html), "action": "priority", "priority": "5", "next": "/jobs", "job": [*mine, done, theirs]}
    r = mon.http.post("/jobs/bulk", data=form, follow_redirects=False)
    assert r.status_code == 303
    assert parse_qs(urlsplit(r.headers["location"]).query) == {"bulk": ["priority"], "done": ["2"], "refused": ["2"]}
    with mon.db.session() as s:
        assert [s.get(Job, j).priority for j in (*mine, done, theirs)] == [5, 5, 50, 50]
    page = mon.http.get(r.headers["location"]).text
    assert "Set priority: done for 2 job(s), refused for 2." in page
    r = mon.http.post("/jobs/bulk", data={**form, "priority": "x"})
    assert r.status_code == 422 and "from 0 to 100" in r.text
