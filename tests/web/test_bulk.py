"""Bulk actions on the jobs list (issue 16): each selected job through its own door, CSRF, other companies refused."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from farm.db.models import Job
from tests.web.test_monitor import Monitor, csrf_of


def test_bulk_pause_acts_on_each_selected_job_and_counts_refusals(mon: Monitor) -> None:
    queued = [mon.add_job(company="acme") for _ in range(2)]
    done = mon.add_job(company="acme", status="completed")
    theirs = mon.add_job(company="beta")
    mon.login(mon.company_token("acme"))
    html = mon.http.get("/jobs?sort=name").text
    assert 'form="bulk"' in html and 'id="pick-all"' in html
    form = {"csrf": csrf_of(html), "action": "pause", "next": "/jobs?sort=name", "job": [*queued, done, theirs]}
    r = mon.http.post("/jobs/bulk", data=form, follow_redirects=False)
    assert r.status_code == 303
    target = urlsplit(r.headers["location"])
    assert target.path == "/jobs"
    assert parse_qs(target.query) == {"sort": ["name"], "bulk": ["pause"], "done": ["2"], "refused": ["2"]}
    with mon.db.session() as s:
        assert {s.get(Job, j).status.value for j in queued} <= {"paused", "pause-requested"}
        assert s.get(Job, done).status.value == "completed"
        assert s.get(Job, theirs).status.value == "queued"  # another company's job: untouched
    page = mon.http.get(r.headers["location"]).text
    assert "Pause: done for 2 job(s), refused for 2." in page


def test_bulk_needs_csrf_an_action_and_a_selection(mon: Monitor) -> None:
    job = mon.add_job()
    mon.login(mon.admin)
    csrf = csrf_of(mon.http.get("/jobs").text)
    assert mon.http.post("/jobs/bulk", data={"action": "cancel", "job": job}).status_code == 403
    with mon.db.session() as s:
        assert s.get(Job, job).status.value == "queued"
    r = mon.http.post("/jobs/bulk", data={"csrf": csrf, "action": "explode", "job": job})
    assert 400 <= r.status_code < 500 and "choose one of cancel, pause, resume, retry" in r.text
    r = mon.http.post("/jobs/bulk", data={"csrf": csrf, "action": "cancel"})
    assert 400 <= r.status_code < 500 and "select at least one job" in r.text
    r = mon.http.post("/jobs/bulk", data={"csrf": csrf, "action": "cancel", "job": job, "next": "//evil.example"})
    assert r.status_code == 200 and r.url.path == "/jobs"  # only local redirects
