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
    tab.bring_to_front()
    button = tab.get_by_role("button", name="Pause")
    button.wait_for()
    clicked = time.monotonic()
    button.click()
    tab.wait_for_function(
        f"() => ({STATUS})() === 'paused' || ({STATUS})() === 'pause-requested'", timeout=1_000, polling=50
    )
    assert time.monotonic() - clicked < 1.0
    # The jobs list (another tab, same stream) follows within a second too.
    row = f"tr[data-job='{jobs[0]}'] [data-f='status_label']"
    listing.wait_for_function(
        f"() => ['paused', 'pause-requested'].includes(document.querySelector(\"{row}\").dataset.status)",
        timeout=1_000,
        polling=50,
    )
    # A change from elsewhere (the scheduler finishing the 2nd job) reaches the 2nd tab and the list within a second.
    with mon.db.session() as s:
        s.get(Job, jobs[1]).status = "canceled"
    changed = time.monotonic()
    tabs[1].wait_for_function(f"() => ({STATUS})() === 'canceled'", timeout=1_500, polling=50)
    listing.wait_for_function(
        f"() => document.querySelector(\"tr[data-job='{jobs[1]}'] [data-f='status_label']\").dataset.status"
        " === 'canceled'",
        timeout=1_500,
        polling=50,
    )
    assert time.monotonic() - changed < 1.5
    # ...and a retried job goes live again on the same, still open page.
    with mon.db.session() as s:
        s.get(Job, jobs[1]).status = "queued"
    tabs[1].wait_for_function(f"() => ({STATUS})() === 'queued'", timeout=1_500, polling=50)
    # A job submitted now appears in the open list.
    fresh = mon.add_job(frames=2, status="queued")
    listing.wait_for_function(f"() => !!document.querySelector(\"tr[data-job='{fresh}']\")", timeout=1_500, polling=50)
    context.close()


def test_phone_and_wide_layouts(server: Server, browser) -> None:  # noqa: F811
    mon = server.monitor
    job = mon.add_job(frames=8, status="active", stored=3)
    now = datetime.now(UTC)
    with mon.db.session() as s:
        company = s.get(Job, job).company_id
        ledger.record(s, ledger.Usage(company, job, None, 1, "n", "gpu", 1.0, now, now, 5400.0, "completed"))
    nodeview.write(
        mon.db,
        nodeview.Snapshot(workers=(nodeview.WorkerState("slot-0", "node-a", "idle"),)),
        now - timedelta(seconds=1),
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


def test_log_viewer_searches_follows_and_downloads(server: Server, browser) -> None:  # noqa: F811
    from farm.db.models import TaskAttempt
    from tests import factories

    mon = server.monitor
    now = datetime.now(UTC)
    with mon.db.session() as s:
        job = factories.job(s, "default", frames="1-6", chunk_size=2, status="active", tasks=["failed"] * 3).id
        for index, text in ((0, "Fra:1 Mem 12M\nSaved frame_0001.png"), (1, "Error: out of memory on node-b")):
            s.add(
                TaskAttempt(
                    task_id=f"{job}-t{index}", number=1, node="node-a", worker="slot-0", status="failed",
                    started_at=now, ended_at=now, seconds=1.0, reason="", log_tail=text,
                )
            )  # fmt: skip
    context, page = login(browser, type("Farm", (), {"url": server.url})(), mon.admin)
    try:
        page.goto(f"{server.url}/jobs/{job}")
        page.get_by_text("Show Blender's output").click()
        blocks = page.locator("#log-blocks section.log-block")
        assert blocks.count() == 2
        page.get_by_label("Search the log").fill("OUT OF MEMORY")
        assert page.locator("#log-blocks section.log-block:visible").count() == 1
        assert "out of memory" in page.locator("#log-blocks section.log-block:visible pre").inner_text()
        page.get_by_label("Search the log").fill("no such text")
        assert page.locator("#log-blocks .log-nomatch").is_visible()
        page.get_by_label("Search the log").fill("")
        # A new attempt's output arrives live, and follow mode scrolls it into view.
        with mon.db.session() as s:
            s.add(
                TaskAttempt(
                    task_id=f"{job}-t2", number=1, node="node-a", worker="slot-0", status="failed",
                    started_at=now, ended_at=now, seconds=1.0, reason="", log_tail="\n".join(["line"] * 400),
                )
            )  # fmt: skip
        page.wait_for_function("() => document.querySelectorAll('#log-blocks section.log-block').length === 3")
        page.wait_for_function(
            "() => { const b = document.getElementById('log-blocks'); "
            "return b.scrollHeight - b.scrollTop - b.clientHeight < 30; }"
        )
        with page.expect_download() as download:
            page.locator("section[data-key='1-1'] a.log-download").click()
        assert "out of memory" in download.value.path().read_text()
    finally:
        context.close()
