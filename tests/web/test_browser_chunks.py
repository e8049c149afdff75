"""A chunk's Requeue and Cancel from the job page in a real browser (Debian's Chromium through Playwright).

The API and monitor run on 127.0.0.1 over a real SQLite database without a scheduler, as in the unblock test: the
test moves states as the scheduler would. The buttons ask first (a confirm step that works on rows the stream drew
after load), post in the background, and the row shows the chunk's new state without a reload; a refusal is shown
above the chunks in the viewer's language; the priority edit goes away live when the job finishes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from farm.db.models import Job, Task
from farm.domain.states import JobStatus, TaskStatus
from tests import factories
from tests.web.test_browser_unblock import Server
from tests.web.test_monitor import Monitor

T = TaskStatus


@pytest.fixture()
def farm_server(tmp_path: Path) -> Iterator[Server]:
    """The API and monitor served on 127.0.0.1 (as the unblock test's ``server``), no scheduler."""
    with factories.api_farm(tmp_path) as farm, factories.serve(farm.app, timeout_graceful_shutdown=5) as url:
        yield Server(url, Monitor(None, farm.db, farm.store, farm.admin_token))  # type: ignore[arg-type]


def _job(server: Server, tasks: list[TaskStatus]) -> str:
    with server.monitor.db.session() as s:
        frames = f"1-{2 * len(tasks)}"
        return factories.job(s, "default", frames=frames, chunk_size=2, status="active", tasks=tasks, name="shot").id


def _status(server: Server, job: str, index: int) -> str:
    with server.monitor.db.session() as s:
        task = s.get(Task, f"{job}-t{index}")
        assert task is not None
        return task.status.value


def _set(server: Server, job: str, index: int | None, status: str) -> None:
    with server.monitor.db.session() as s:
        row = s.get(Task, f"{job}-t{index}") if index is not None else s.get(Job, job)
        assert row is not None
        row.status = status


def _open(browser, server: Server, job: str, locale: str):
    context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    blocked: list[str] = []
    context.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    page = context.new_page()
    page.goto(f"{server.url}/jobs/{job}")
    label = "API token" if locale.startswith("en") else "API 令牌"
    page.get_by_label(label).fill(server.monitor.company_token("default"))
    page.locator("form[action='/login'] button[type=submit]").click()
    page.wait_for_url(f"{server.url}/jobs/{job}")
    page.wait_for_selector("body[data-live-seen=yes]")  # the stream is open
    page.evaluate("() => { window.__noReload = true; }")
    return context, page, blocked


def _row_status(page, index: int) -> str:
    return str(page.locator(f"#tasks tr[data-task='{index}'] .status").text_content()).strip()


def test_requeue_a_chunk_from_the_job_page(farm_server: Server, browser) -> None:
    server = farm_server
    job = _job(server, [T.COMPLETED, T.RUNNING, T.QUEUED])
    context, page, blocked = _open(browser, server, job, "en-US")
    asked: list[str] = []

    # A row the stream redraws keeps its confirm step: chunk 2 starts running while the page is open.
    _set(server, job, 2, T.RUNNING.value)
    page.wait_for_function(
        "() => document.querySelector(\"#tasks tr[data-task='2'] .status\").textContent.trim() === 'Running'"
    )
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.locator("#tasks tr[data-task='2'] button.action-chunk-cancel").click()
    assert asked == ["Cancel chunk 2? Its frames are left out of the job."]
    time.sleep(0.3)
    assert _status(server, job, 2) == "running"  # dismissed: nothing was sent

    # Requeue the completed chunk 0: accepted, and the row shows it queued again within a second, no reload.
    page.once("dialog", lambda d: (asked.append(d.message), d.accept()))
    page.locator("#tasks tr[data-task='0'] button.action-chunk-requeue").click()
    clicked = time.monotonic()
    page.wait_for_function(
        "() => document.querySelector(\"#tasks tr[data-task='0'] .status\").textContent.trim() === 'Queued'",
        timeout=1_000,
    )
    assert time.monotonic() - clicked < 1.0
    assert asked[-1] == "Render chunk 0 again? A running attempt is stopped."
    assert _status(server, job, 0) == "queued"
    assert page.evaluate("() => window.__noReload") is True
    assert page.locator("#chunk-flash").is_hidden()
    assert not blocked, blocked
    context.close()


def test_a_refused_chunk_action_and_the_priority_edit_follow_live_in_chinese(farm_server: Server, browser) -> None:
    server = farm_server
    job = _job(server, [T.RUNNING, T.QUEUED])
    context, page, blocked = _open(browser, server, job, "zh-CN")
    assert page.locator("#priority-form").is_visible()

    # The chunk completes while the confirm is open (the page's script waits on it): the server refuses the cancel
    # and the page says why, in Chinese, above the chunks.
    def meanwhile(dialog) -> None:
        _set(server, job, 0, T.COMPLETED.value)
        dialog.accept()

    page.once("dialog", meanwhile)
    page.locator("#tasks tr[data-task='0'] button.action-chunk-cancel").click()
    flash = page.locator("#chunk-flash")
    flash.wait_for(state="visible", timeout=2_000)
    text = str(flash.text_content())
    assert "分块操作被拒绝" in text and "只能取消尚待渲染的分块" in text and "已完成" in text, text
    assert "canceled" not in text and "chunks" not in text  # no English sentence
    assert _status(server, job, 0) == "completed"
    page.wait_for_function(
        "() => document.querySelector(\"#tasks tr[data-task='0'] .status\").textContent.trim() === '已完成'"
    )

    # The job finishes: its priority can no longer be changed, and the form goes away without a reload.
    _set(server, job, 1, T.COMPLETED.value)
    _set(server, job, None, JobStatus.COMPLETED.value)
    page.locator("#priority-form").wait_for(state="hidden", timeout=2_000)
    assert page.evaluate("() => window.__noReload") is True
    assert not blocked, blocked
    context.close()
