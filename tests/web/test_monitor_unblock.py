"""The job page's "Blocklisted nodes" section: who sees it, and its Unblock buttons (HTTP, real SQLite and store)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from farm.contract import Role
from farm.db.models import BlocklistEntry, Job
from farm.services.auth import Principal, resolve_token
from tests.web.test_monitor import Monitor, csrf_of
from web.monitor import actions

CRASH = "Blender exited with -11 (SIGSEGV) on frame 3"


def block(mon: Monitor, job_id: str, node: str, failures: int = 3, blocked: bool = True, reason: str = CRASH) -> None:
    """A blocklist row as the scheduler leaves it after ``failures`` failed chunks on ``node``."""
    now = datetime.now(UTC)
    with mon.db.session() as s:
        s.add(
            BlocklistEntry(
                job_id=job_id,
                node=node,
                failures=failures,
                reason=reason,
                blocked_at=now if blocked else None,
                updated_at=now,
            )
        )


def listed(mon: Monitor, job_id: str) -> dict[str, bool]:
    """node → blocked, straight from the database."""
    with mon.db.session() as s:
        rows = s.scalars(select(BlocklistEntry).where(BlocklistEntry.job_id == job_id))
        return {row.node: row.blocked_at is not None for row in rows}


def unblock_forms(html: str) -> list[str]:
    """The node of each Unblock form on the page ("" for Unblock all), in page order."""
    forms = re.findall(r'<form method="post" action="/jobs/[^"]+/unblock"[^>]*>(.*?)</form>', html, re.S)
    return [(re.findall(r'name="node" value="([^"]*)"', form) or [""])[0] for form in forms]


def test_the_section_lists_every_node_and_offers_unblock_for_blocked_ones(mon: Monitor) -> None:
    job = mon.add_job(status="active")
    block(mon, job, "gpu-node-1")
    block(mon, job, "cpu-node-2", failures=1, blocked=False, reason="lease expired")
    mon.login(mon.company_token("default"))  # an artist: the API lets every role that sees the job unblock
    html = mon.http.get(f"/jobs/{job}").text
    assert '<section id="blocklist" aria-labelledby="blocklist-h">' in html  # not hidden
    assert "Blocklisted nodes" in html and CRASH in html and "lease expired" in html
    assert '<tr data-node="gpu-node-1">' in html and '<tr data-node="cpu-node-2">' in html
    assert "Not blocked" in html and 'aria-label="Unblock gpu-node-1"' in html
    # One button for the blocked node (none for the node that is only counting failures), then Unblock all.
    assert unblock_forms(html) == ["gpu-node-1", ""]
    assert ">Unblock all</button>" in html

    zh = mon.http.get(f"/jobs/{job}", headers={"Accept-Language": "zh-CN"}).text
    assert "被屏蔽的节点" in zh and "全部解除屏蔽" in zh and 'aria-label="解除屏蔽 gpu-node-1"' in zh

    # The live stream carries the same section, so a node blocked while the page is open shows up.
    with mon.db.session() as s:
        s.get(Job, job).status = "failed"  # finished: the stream ends on its own
    body = mon.http.get(f"/jobs/{job}/events").text
    assert "event: blocklist" in body and "gpu-node-1" in body and '"shown":true' in body


def test_a_job_without_failed_nodes_has_the_section_hidden(mon: Monitor) -> None:
    job = mon.add_job(status="active")
    mon.login(mon.admin)
    html = mon.http.get(f"/jobs/{job}").text
    assert '<section id="blocklist" aria-labelledby="blocklist-h" hidden>' in html
    assert unblock_forms(html) == []


def test_a_node_that_is_not_blocked_gets_no_unblock_all_either(mon: Monitor) -> None:
    job = mon.add_job(status="active")
    block(mon, job, "cpu-node-2", failures=1, blocked=False)
    mon.login(mon.admin)
    html = mon.http.get(f"/jobs/{job}").text
    assert '<tr data-node="cpu-node-2">' in html and unblock_forms(html) == []


def test_unblock_clears_the_node_and_the_job_says_so(mon: Monitor) -> None:
    job = mon.add_job(status="active")
    block(mon, job, "gpu-node-1")
    block(mon, job, "gpu-node-3")
    mon.login(mon.company_token("default"))
    html = mon.http.get(f"/jobs/{job}").text
    r = mon.http.post(
        f"/jobs/{job}/unblock", data={"csrf": csrf_of(html), "node": "gpu-node-1"}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == f"/jobs/{job}"
    assert listed(mon, job) == {"gpu-node-3": True}
    with mon.db.session() as s:
        assert s.get(Job, job).status_reason == "unblocked gpu-node-1"
    page = mon.http.get(r.headers["location"]).text
    assert '<tr data-node="gpu-node-1">' not in page and "unblocked gpu-node-1" in page

    # Unblock all: no node in the form.
    mon.http.post(f"/jobs/{job}/unblock", data={"csrf": csrf_of(page)})
    assert listed(mon, job) == {}
    with mon.db.session() as s:
        assert s.get(Job, job).status_reason == "unblocked gpu-node-3"
    assert '<section id="blocklist" aria-labelledby="blocklist-h" hidden>' in mon.http.get(f"/jobs/{job}").text


def test_unblock_needs_the_csrf_token(mon: Monitor) -> None:
    job = mon.add_job(status="active")
    block(mon, job, "gpu-node-1")
    mon.login(mon.admin)
    html = mon.http.get(f"/jobs/{job}").text
    assert mon.http.post(f"/jobs/{job}/unblock", data={"node": "gpu-node-1"}).status_code == 403
    assert mon.http.post(f"/jobs/{job}/unblock", data={"node": "gpu-node-1", "csrf": "forged"}).status_code == 403
    other = TestClient(mon.http.app, base_url="http://127.0.0.1")  # another browser: no session, no cookie
    r = other.post(f"/jobs/{job}/unblock", data={"node": "gpu-node-1", "csrf": csrf_of(html)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert listed(mon, job) == {"gpu-node-1": True}


def test_another_companys_job_answers_404_and_keeps_its_blocklist(mon: Monitor) -> None:
    theirs = mon.add_job(company="beta", status="active")
    mine = mon.add_job(company="acme", status="active")
    block(mon, theirs, "gpu-node-1")
    mon.login(mon.company_token("acme"))
    csrf = csrf_of(mon.http.get(f"/jobs/{mine}").text)
    assert mon.http.get(f"/jobs/{theirs}").status_code == 404
    for data in ({"csrf": csrf, "node": "gpu-node-1"}, {"csrf": csrf}):
        assert mon.http.post(f"/jobs/{theirs}/unblock", data=data).status_code == 404
    assert listed(mon, theirs) == {"gpu-node-1": True}


def test_an_unknown_node_is_a_404_page_that_says_how_to_find_the_names(mon: Monitor) -> None:
    job = mon.add_job(status="active")
    block(mon, job, "gpu-node-1")
    mon.login(mon.admin)
    html = mon.http.get(f"/jobs/{job}").text
    r = mon.http.post(f"/jobs/{job}/unblock", data={"csrf": csrf_of(html), "node": "nowhere"})
    assert r.status_code == 404 and "nowhere" in r.text and "text/html" in r.headers["content-type"]
    assert listed(mon, job) == {"gpu-node-1": True}


@pytest.mark.parametrize("role", list(Role))
def test_the_buttons_follow_the_api_rule_for_every_role(mon: Monitor, role: Role) -> None:
    job = mon.add_job(status="active")
    block(mon, job, "gpu-node-1")
    token = mon.admin if role is Role.PLATFORM_ADMIN else mon.company_token("default", role)
    mon.login(token)
    shown = bool(unblock_forms(mon.http.get(f"/jobs/{job}").text))
    api = mon.http.post(
        f"/api/v1/jobs/{job}/unblock", json={"node": "gpu-node-1"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert api.status_code in (200, 403), api.text
    with mon.db.session() as s:
        who: Principal = resolve_token(s, token, datetime.now(UTC))
    assert shown == (api.status_code == 200) == actions.may_unblock(who)
