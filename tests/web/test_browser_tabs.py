"""Many monitor tabs in one real browser (Debian's Chromium through Playwright), and the phone and wide layouts.

A browser allows six connections per host over HTTP/1.1: when every tab held its own event stream, the 7th tab took a
minute to load and an action clicked in an open tab never reached the server. The API and monitor run on 127.0.0.1
over a real SQLite database without a scheduler (the test plays the scheduler's part where needed).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from farm.db.models import Job
from farm.metering import ledger
from farm.services import nodeview
from tests.web.test_browser import SHOTS, login
from tests.web.test_browser_unblock import Server, server  # noqa: F401  (the fixture)

STATUS = "() => document.getElementById('job-status').dataset.status"


def test_eleven_tabs_share_one_stream_and_actions_land_within_a_second(server: Server, browser) -> None:  # noqa: F811
    mon = server.monitor
    jobs = [mon.add_job(frames=4, status="queued") for _ in range(10)]
    context, first_list = login(browser, type("Farm", (), {"url": server.url})(), mon.admin)
    tabs = []
    for job in jobs:
        tab = context.new_page()
        started = time.monotonic()
        tab.goto(f"{server.url}/jobs/{job}")
        assert time.monotonic() - started < 5, "a tab took seconds to load: connections are exhausted"
        tabs.append(tab)
    listing = context.new_page()
    started = time.monotonic()
    listing.goto(f"{server.url}/jobs")
    assert time.monotonic() - started < 5
    # Every tab is live (the stream has delivered its state; the bar shows 0 %).
    for tab in [*tabs, listing]:
        tab.wait_for_function("() => document.body.dataset.liveSeen === 'yes'", timeout=10_000)

    # Pause the first job from its tab: the click posts, and the page shows the new state within a second.
    tab = tabs[0]
    clicked = time.monotonic()
    tab.get_by_role("button", name="Pause").click()
    tab.wait_for_function(f"() => ({STATUS})() === 'paused' || ({STATUS})() === 'pause-requested'", timeout=1_000)
    assert time.monotonic() - clicked < 1.0
    # The jobs list (another tab, same stream) follows within a second too.
    row = f"tr[data-job='{jobs[0]}'] [data-f='status_label']"
    listing.wait_for_function(
        f"() => ['paused', 'pause-requested'].includes(document.querySelector(\"{row}\").dataset.status)",
        timeout=1_000,
    )
    # A change from elsewhere (the scheduler finishing the 2nd job) reaches the 2nd tab and the list within a second.
    with mon.db.session() as s:
        s.get(Job, jobs[1]).status = "canceled"
    changed = time.monotonic()
    tabs[1].wait_for_function(f"() => ({STATUS})() === 'canceled'", timeout=1_500)
    listing.wait_for_function(
        f"() => document.querySelector(\"tr[data-job='{jobs[1]}'] [data-f='status_label']\").dataset.status"
        " === 'canceled'",
        timeout=1_500,
    )
    assert time.monotonic() - changed < 1.5
    # ...and a retried job goes live again on the same, still open page.
    with mon.db.session() as s:
        s.get(Job, jobs[1]).status = "queued"
    tabs[1].wait_for_function(f"() => ({STATUS})() === 'queued'", timeout=1_500)
    # A job submitted now appears in the open list.
    fresh = mon.add_job(frames=2, status="queued")
    listing.wait_for_selector(f"tr[data-job='{fresh}']", timeout=1_500)
    context.close()


def test_phone_and_wide_layouts(server: Server, browser) -> None:  # noqa: F811
    mon = server.monitor
    job = mon.add_job(frames=8, status="active", stored=3)
    now = datetime.now(UTC)
    with mon.db.session() as s:
        company = s.get(Job, job).company_id
        ledger.record(s, ledger.Usage(company, job, None, 1, "n", "gpu", 1.0, now, now, 5400.0, "completed"))
    nodeview.write(
        mon.db, nodeview.Snapshot(workers=(nodeview.WorkerState("slot-0", "node-a", "idle"),)), now - timedelta(seconds=1)
    )
    context, page = login(browser, type("Farm", (), {"url": server.url})(), mon.admin)
    for width, height in ((390, 844), (1920, 1080)):
        page.set_viewport_size({"width": width, "height": height})
        for name, path in (
            ("jobs", "/jobs"),
            ("job", f"/jobs/{job}"),
            ("workers", "/workers"),
            ("usage", "/usage"),
            ("error", "/jobs/job-missing"),
        ):
            page.goto(f"{server.url}{path}")
            page.screenshot(path=str(SHOTS / f"tabs-{name}-{width}.png"), full_page=True)
            # Nothing sticks out sideways: the page never scrolls horizontally.
            overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{name} at {width}px is {overflow}px too wide"
            if name == "error":  # the error page keeps the header, navigation and language switch
                assert page.get_by_role("link", name="Workers").is_visible()
                assert page.locator("#lang-select").is_visible()
        # The usage chart is whole: its right edge is inside its box and the viewport.
        page.goto(f"{server.url}/usage")
        chart = page.locator("figure.chart svg").bounding_box()
        box = page.locator("figure.chart").bounding_box()
        assert chart and box and chart["x"] + chart["width"] <= box["x"] + box["width"] + 0.5 <= width + 0.5
        if width == 1920:  # content uses a wide screen (it stopped at 1240 px)
            page.goto(f"{server.url}/jobs")
            assert page.locator("main").bounding_box()["width"] > 1600
    icon = page.request.get(f"{server.url}/favicon.ico")
    assert icon.ok and icon.headers["content-type"].startswith("image/svg+xml")
    context.close()
