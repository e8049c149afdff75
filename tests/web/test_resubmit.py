"""Resubmitting a job from its page (issue 16): same inputs through the API's own submit, optional overrides, CSRF,
other companies refused."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from farm.contract import JobSettings
from farm.db.models import Blob, Job
from tests import factories
from tests.web.test_monitor import Monitor, csrf_of

SHA = "ab" * 32


def a_job_with_inputs(mon: Monitor, company: str = "acme") -> str:
    now = datetime.now(UTC)
    with mon.db.session() as s:
        job = factories.job(
            s, company, name="hero", frames="1-10", chunk_size=5, status="completed", priority=70,
            tasks=["completed"] * 2, settings={"resolution": "64x48", "samples": 16, "output_format": "PNG"},
            manifest={"scene.blend": {"sha256": SHA, "size": 10}},
        )  # fmt: skip
        s.add(Blob(company_id=job.company_id, sha256=SHA, size=10, created_at=now))
        return job.id


def test_resubmit_keeps_the_inputs_and_applies_overrides(mon: Monitor) -> None:
    old = a_job_with_inputs(mon)
    mon.login(mon.company_token("acme"))
    html = mon.http.get(f"/jobs/{old}").text
    assert f'action="/jobs/{old}/resubmit"' in html
    form = {"csrf": csrf_of(html), "frames": "3-4", "samples": "4", "priority": "", "resolution": ""}
    r = mon.http.post(f"/jobs/{old}/resubmit", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    new = r.headers["location"].removeprefix("/jobs/")
    assert new != old
    with mon.db.session() as s:
        a, b = s.get(Job, old), s.get(Job, new)
        assert b.status.value == "queued" and b.frames == "3-4" and b.frames_total == 2
        assert b.manifest == a.manifest and b.blend_file == a.blend_file and b.company_id == a.company_id
        assert (b.priority, b.chunk_size, b.name) == (70, 5, "hero")
        settings = JobSettings.of(b.settings)
        assert (settings.samples, settings.resolution, settings.output_format.value) == (4, "64x48", "PNG")
    assert "hero" in mon.http.get(r.headers["location"]).text


def test_resubmit_refuses_bad_values_missing_csrf_and_other_companies(mon: Monitor) -> None:
    old = a_job_with_inputs(mon)
    mon.login(mon.company_token("acme"))
    csrf = csrf_of(mon.http.get(f"/jobs/{old}").text)
    assert mon.http.post(f"/jobs/{old}/resubmit", data={"frames": "1"}).status_code == 403
    r = mon.http.post(f"/jobs/{old}/resubmit", data={"csrf": csrf, "priority": "500"})
    assert r.status_code == 422 and re.search(r"priority: .*100", r.text)
    r = mon.http.post(f"/jobs/{old}/resubmit", data={"csrf": csrf, "frames": "banana"})
    assert 400 <= r.status_code < 500
    mon.login(mon.company_token("beta"))
    csrf = csrf_of(mon.http.get("/jobs").text)
    assert mon.http.post(f"/jobs/{old}/resubmit", data={"csrf": csrf}).status_code == 404
    with mon.db.session() as s:
        assert s.query(Job).count() == 1
