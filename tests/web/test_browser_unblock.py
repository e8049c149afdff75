"""Unblocking a node from the job page in a real browser (Debian's Chromium through Playwright).

The API and monitor run on 127.0.0.1 over a real SQLite database without a scheduler: the blocklist rows are written
by the test, as the scheduler would leave them, so no render has to fail first.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from farm.db.models import BlocklistEntry, Job
from tests import factories
from tests.web.test_browser import shoot
from tests.web.test_monitor import Monitor


@dataclass
class Server:
    url: str
    monitor: Monitor  # the database helpers of the HTTP tests (its TestClient is not used here)


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[Server]:
    with factories.api_farm(tmp_path) as farm, factories.serve(farm.app, timeout_graceful_shutdown=5) as url:
        yield Server(url, Monitor(None, farm.db, farm.store, farm.admin_token))  # type: ignore[arg-type]


def block(server: Server, job_id: str, node: str) -> None:
    now = datetime.now(UTC)
    with server.monitor.db.session() as s:
        s.add(
            BlocklistEntry(
                job_id=job_id, node=node, failures=3, reason="Blender crashed", blocked_at=now, updated_at=now
            )
        )


def test_unblock_in_a_real_browser(server: Server, browser) -> None:
    job = server.monitor.add_job(status="active")  # still running: its page keeps its event stream open
    block(server, job, "gpu-node-1")
    token = server.monitor.company_token("default")  # an artist of the job's company

    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.goto(f"{server.url}/jobs/{job}")
    page.get_by_label("API token").fill(token)
    page.locator("form[action='/login'] button[type=submit]").click()
    page.wait_for_url(f"{server.url}/jobs/{job}")

    section = page.locator("#blocklist")
    assert section.is_visible()
    assert page.get_by_role("heading", name="Blocklisted nodes").is_visible()
    assert section.locator("tr[data-node='gpu-node-1']").is_visible()

    # A node blocked while the page is open appears through the event stream, with its own working button.
    block(server, job, "gpu-node-2")
    section.locator("tr[data-node='gpu-node-2']").wait_for()
    shoot(page, "job-blocklist")

    page.get_by_role("button", name="Unblock gpu-node-1").click()
    page.wait_for_function("() => document.getElementById('job-reason').textContent === 'unblocked gpu-node-1'")
    assert section.locator("tr[data-node='gpu-node-1']").count() == 0
    assert section.locator("tr[data-node='gpu-node-2']").is_visible()
    with server.monitor.db.session() as s:
        nodes = set(s.scalars(select(BlocklistEntry.node).where(BlocklistEntry.job_id == job)))
        assert nodes == {"gpu-node-2"}

    page.get_by_role("button", name="Unblock all").click()
    page.wait_for_function("() => document.getElementById('job-reason').textContent === 'unblocked gpu-node-2'")
    assert section.is_hidden()
    with server.monitor.db.session() as s:
        assert s.scalar(select(BlocklistEntry).where(BlocklistEntry.job_id == job)) is None
        assert s.get(Job, job).status_reason == "unblocked gpu-node-2"
    context.close()  # before the server stops: ends the page's event stream
