"""The monitor in a real browser (Debian's Chromium through Playwright) against the embedded farm (real Ray, Blender).

Screenshots of every page at 1280 and 390 px go to test-artifacts/screenshots/ (ignored by git).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from farm.client import FarmClient
from farm.contract import Role
from farm.services.auth import create_token, ensure_company

pytestmark = [pytest.mark.ray, pytest.mark.blender]

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
WIDTHS = {"wide": (1280, 900), "narrow": (390, 844)}


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (scripts/system-deps.sh installs it)")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def login(browser, farm, token: str, locale: str = "en-US"):
    context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.goto(f"{farm.url}/jobs")
    assert "/login" in page.url  # every page needs a session
    page.get_by_label("API token" if locale.startswith("en") else "API 令牌").fill(token)
    page.locator("form[action='/login'] button[type=submit]").click()
    page.wait_for_url(f"{farm.url}/jobs")
    return context, page


def shoot(page, name: str) -> None:
    """The page at both widths, full length."""
    for label, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(SHOTS / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def progress_of(page) -> float:
    return float(page.locator("#job-progress").evaluate("el => el.value"))


def test_monitor_in_a_real_browser(farm, sample_blend, browser):
    # A long blocker keeps the one render slot busy, so the watched job is still queued when its page opens.
    with FarmClient(farm.url, farm.admin_token) as client:
        blocker = client.submit(
            sample_blend, "1-3000", name="blocker", chunk_size=500, resolution="32x32", samples=1
        ).job
        # Big enough (a few tenths of a second a frame) that the page sees progress between 0 and 1.
        watched = client.submit(
            sample_blend, "1-12", name="watched", chunk_size=2, resolution="128x96", samples=24, priority=10
        ).job

    context, page = login(browser, farm, farm.admin_token)
    # The monitor works under its Content-Security-Policy (no inline script, no eval): nothing is blocked.
    blocked: list[str] = []
    context.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    shoot(page, "jobs")
    row = page.locator(f"tr[data-job='{watched.id}']")
    assert row.get_by_role("link", name="watched").is_visible()

    # The watched job's page: record every progress value the page shows, without reloading it.
    page.goto(f"{farm.url}/jobs/{watched.id}")
    page.evaluate(
        """() => {
            window.__noReload = true;
            window.__seen = [];
            const bar = document.getElementById('job-progress');
            new MutationObserver(() => window.__seen.push(bar.value)).observe(bar, {childList: true});
        }"""
    )
    assert progress_of(page) == 0.0

    # Cancel the blocker from its own page (in a second tab): the slot frees up and the watched job runs.
    blocker_page = context.new_page()
    blocker_page.goto(f"{farm.url}/jobs/{blocker.id}")
    blocker_page.wait_for_function("() => document.getElementById('job-status').dataset.status === 'active'")
    shoot(blocker_page, "job-running")
    blocker_page.once("dialog", lambda dialog: dialog.accept())
    blocker_page.get_by_role("group", name="Job actions").get_by_role("button", name="Cancel").click()
    blocker_page.wait_for_function(
        "() => document.getElementById('job-status').dataset.status === 'canceled'", timeout=30_000
    )
    assert blocker_page.locator("form[data-action='cancel']").is_hidden()
    blocker_page.close()

    # Progress advances and thumbnails fill in, all over the event stream.
    page.wait_for_function("() => document.getElementById('job-status').dataset.status === 'completed'", timeout=90_000)
    page.wait_for_function("() => document.querySelectorAll('#frames li.done img').length === 12")
    assert page.evaluate("window.__noReload") is True
    seen = page.evaluate("window.__seen")
    assert seen and seen[-1] == 1.0
    assert any(0.0 < value < 1.0 for value in seen), f"no intermediate progress seen: {seen}"
    assert page.locator("#job-frames").inner_text() == "12 / 12"
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('#frames img')).every(i => i.complete && i.naturalWidth === 128)"
    )

    # The log opens and holds Blender's output per attempt.
    log = page.locator("#log-blocks")
    assert log.is_hidden()
    page.get_by_text("Show Blender's output").click()
    assert log.is_visible()
    assert page.locator("#log-blocks section.log-block").count() == 6
    assert "chunk 0" in page.locator("#log-blocks h3").first.inner_text()
    assert page.locator("#tasks tr").count() == 6
    shoot(page, "job")

    page.goto(f"{farm.url}/workers")
    # Keyboard: the skip link is the first stop and leads to the content.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    assert page.get_by_role("cell", name="slot-0", exact=False).count() >= 1
    # Idle slots carry the scheduler's heartbeat (every ~5 s), not the age of their last chunk; the page is live.
    import re
    import time

    time.sleep(6)  # longer than a heartbeat: a page that never refreshed would now show an older beat
    beats = page.locator("#workers-table td.beat").all_inner_texts()
    ages = [int(m.group(1)) for text in beats if (m := re.match(r"(\d+)\s?s ago", text))]
    assert ages and max(ages) < 10, beats
    shoot(page, "workers")
    page.goto(f"{farm.url}/usage")
    assert page.locator("figure.chart svg").is_visible()
    assert page.get_by_role("rowheader", name="default").is_visible()
    shoot(page, "usage")

    # Another company: sees only its own jobs; the admin's job is a 404 for it.
    with farm.db.session() as s:
        other = ensure_company(s, "studio-b", datetime.now(UTC))
        other_token, _ = create_token(s, other, Role.ARTIST, datetime.now(UTC), name="browser test")
    with FarmClient(farm.url, other_token) as client:
        theirs = client.submit(sample_blend, "1", name="b-shot", chunk_size=1, resolution="32x32", samples=1).job
    other_context, other_page = login(browser, farm, other_token)
    assert other_page.locator(f"tr[data-job='{theirs.id}']").count() == 1
    assert other_page.locator(f"tr[data-job='{watched.id}']").count() == 0
    response = other_page.goto(f"{farm.url}/jobs/{watched.id}")
    assert response is not None and response.status == 404
    other_context.close()

    # Chinese from Accept-Language, and back to English with the switch on the page.
    zh_context, zh_page = login(browser, farm, farm.admin_token, locale="zh-CN")
    assert zh_page.locator("html").get_attribute("lang") == "zh-Hans"
    assert zh_page.get_by_role("heading", name="作业").is_visible()
    assert zh_page.get_by_role("link", name="渲染节点").is_visible()
    shoot(zh_page, "jobs-zh")
    zh_page.goto(f"{farm.url}/jobs/{watched.id}")
    assert "已完成" in zh_page.locator("#job-status").inner_text()
    shoot(zh_page, "job-zh")
    zh_page.get_by_label("语言").select_option("en")
    zh_page.get_by_role("button", name="切换").click()
    zh_page.wait_for_load_state()
    assert zh_page.locator("#job-status").inner_text() == "Completed"
    zh_context.close()

    # Logging out ends the session, also for a copy of its cookie replayed from elsewhere.
    kept = context.cookies()
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{farm.url}/login")
    shoot(page, "login")
    page.goto(f"{farm.url}/jobs")
    assert "/login" in page.url
    replay = browser.new_context()
    replay.add_cookies(kept)
    replayed = replay.new_page()
    replayed.goto(f"{farm.url}/jobs")
    assert "/login" in replayed.url
    replay.close()
    assert blocked == [], blocked
    context.close()
