"""The monitor's one event stream (``/events``), the Workers page's heartbeats, and the numbers and colours the pages
show (issue 16), over HTTP against a real SQLite database and store (no browser: see test_browser_tabs.py)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from farm.db.models import Job, TaskAttempt
from farm.domain.states import JobStatus, TaskStatus
from farm.services import nodeview
from tests import factories
from tests.web.test_monitor import Monitor, csrf_of
from web.monitor import routes, views


def read_stream(
    mon: Monitor, topics: list[str], act: Callable[[], None] | None = None
) -> tuple[list[dict[str, Any]], list[str], float]:
    """Every ``m`` update of ``/events`` watching ``topics`` until the stream's time limit (lowered for the tests:
    ``short_streams``), the names of all events, and when ``act`` ran (once the first update has arrived)."""
    updates: list[dict[str, Any]] = []
    names: list[str] = []
    acted = 0.0
    url = "/events?" + urlencode([("watch", t) for t in topics])
    with mon.http.stream("GET", url, headers={"accept": "text/event-stream"}) as r:
        assert r.status_code == 200, r.read()
        event = ""
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
                names.append(event)
            elif line.startswith("data: ") and event == "m":
                update = json.loads(line.removeprefix("data: "))
                update["at"] = time.monotonic()
                updates.append(update)
                if act is not None and not acted:
                    act()
                    acted = time.monotonic()
    return updates, names, acted


@pytest.fixture()
def short_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routes, "STREAM_MAX_S", 3.5)


def test_one_stream_carries_every_topic_and_only_the_viewers_jobs(mon: Monitor, short_streams: None) -> None:
    mine = mon.add_job(company="acme", stored=1)
    other = mon.add_job(company="acme")
    theirs = mon.add_job(company="beta", stored=1)
    mon.login(mon.company_token("acme"))
    topics = [f"job:{mine}", f"job:{other}", f"job:{theirs}", "list:", "workers"]
    updates, names, _ = read_stream(mon, topics)
    assert "end" not in names  # nothing finished the stream but its time limit (the browser reconnects)
    kinds = {(u["topic"], u["kind"]) for u in updates}
    for topic in (f"job:{mine}", f"job:{other}"):
        assert {(topic, "job"), (topic, "tasks")} <= kinds
    assert (f"job:{mine}", "frames") in kinds
    assert {("list:", "list"), ("list:", "row"), ("workers", "workers")} <= kinds
    # Another company's job: one "gone" and nothing of it, anywhere in the stream.
    assert [u["kind"] for u in updates if u["topic"] == f"job:{theirs}"] == ["gone"]
    listed = next(u for u in updates if u["kind"] == "list")
    assert sorted(listed["data"]["ids"]) == sorted([mine, other])
    assert theirs not in json.dumps([u for u in updates if u["topic"] != f"job:{theirs}"])


def test_a_finished_job_that_is_retried_goes_live_again(mon: Monitor, short_streams: None) -> None:
    job = mon.add_job(status="canceled")
    mon.login(mon.admin)

    def retried_from_the_cli() -> None:
        with mon.db.session() as s:
            s.get(Job, job).status = JobStatus.QUEUED

    updates, names, acted = read_stream(mon, [f"job:{job}", "list:"], retried_from_the_cli)
    assert "end" not in names
    states = [u for u in updates if u["kind"] in ("job", "row")]
    assert states[0]["data"]["status"] == "canceled"
    for topic in (f"job:{job}", "list:"):
        back = next(u for u in states if u["topic"] == topic and u["data"]["status"] == "queued")
        assert back["at"] - acted < 1.0, f"{topic}: the retry showed after {back['at'] - acted:.2f}s"


def test_new_jobs_matching_the_filter_appear_in_an_open_list(mon: Monitor, short_streams: None) -> None:
    first = mon.add_job(status="active")
    mon.login(mon.admin)
    added: list[str] = []

    def submitted_elsewhere() -> None:
        added.append(mon.add_job(status="active"))
        added.append(mon.add_job(status="queued"))  # does not match the filter

    updates, _, acted = read_stream(mon, ["list:status=active"], submitted_elsewhere)
    lists = [u for u in updates if u["kind"] == "list"]
    assert lists[0]["data"]["ids"] == [first]
    grown = next(u for u in lists if len(u["data"]["ids"]) == 2)
    assert grown["data"]["ids"] == [added[0], first]  # newest first, as the page sorts
    assert set(grown["data"]["rows"]) == {added[0]}  # only the row the page lacks is sent as HTML
    assert f'<tr data-job="{added[0]}">' in grown["data"]["rows"][added[0]]
    assert grown["data"]["count"] == "2 job(s)"
    assert grown["at"] - acted < 1.0
    assert all(added[1] not in u["data"]["ids"] for u in lists)


def test_bad_topics_are_refused_with_what_to_watch(mon: Monitor) -> None:
    mon.login(mon.admin)
    r = mon.http.get("/events?watch=jobs:x")
    assert 400 <= r.status_code < 500 and "job:&lt;job id&gt;" in r.text
    r = mon.http.get("/events?" + urlencode([("watch", f"job:j{i}") for i in range(65)]))
    assert 400 <= r.status_code < 500 and "at most 64" in r.text


def test_idle_slots_show_the_schedulers_fresh_heartbeat(mon: Monitor, short_streams: None) -> None:
    job = mon.add_job(status="active")
    now = datetime.now(UTC)
    snap = nodeview.Snapshot(
        workers=(
            nodeview.WorkerState("slot-0", "node-a", "idle"),
            nodeview.WorkerState("slot-1", "node-a", "busy", f"{job}-t0"),
        )
    )
    nodeview.write(mon.db, snap, now - timedelta(seconds=2))
    mon.login(mon.admin)
    html = mon.http.get("/workers").text
    idle = re.search(r'<tr data-slot="slot-0">.*?</tr>', html, re.S)
    assert idle and "Idle" in idle.group(0) and re.search(r"\b[0-5]\s?s ago", idle.group(0)), html
    busy = re.search(r'<tr data-slot="slot-1">.*?</tr>', html, re.S)
    assert busy and f'href="/jobs/{job}">shot-default</a>' in busy.group(0) and "frames 1-2" in busy.group(0)

    # The page is live: a heartbeat written while it is open shows within a second.
    def beat() -> None:
        nodeview.write(mon.db, snap, datetime.now(UTC) + timedelta(seconds=60))  # a later beat than "now"

    updates, _, acted = read_stream(mon, ["workers"], beat)
    assert len(updates) >= 2 and updates[1]["at"] - acted < 1.0
    # Another company sees that slot-1 is busy, not with what.
    mon.login(mon.company_token("beta"))
    theirs = mon.http.get("/workers").text
    assert "Busy" in theirs and job not in theirs and "shot-default" not in theirs


def test_elapsed_counts_running_time_and_eta_freezes_while_paused() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def at(s: float) -> datetime:
        return t0 + timedelta(seconds=s)

    # Two overlapping attempts, a 100 s gap (canceled, then retried), one open attempt.
    attempts = [(at(0), at(10)), (at(5), at(20)), (at(120), None)]
    assert views.running_seconds(attempts, at(130)) == pytest.approx(30.0)
    assert views.running_seconds(attempts, at(60)) == pytest.approx(20.0)
    # 10 frames done over 20 s of running time (the gap does not count): 10 left take 20 s more.
    frames = [at(2 * i) for i in range(1, 11)]
    assert views.eta_seconds(attempts[:2], frames, 10, 20, at(20)) == pytest.approx(20.0)
    # Paused at 20 s: no attempt runs, so the estimate stays where it was however long the pause.
    assert views.eta_seconds(attempts[:2], frames, 10, 20, at(500)) == pytest.approx(20.0)
    # Recent throughput sets the pace: 30 slow frames, then 21 fast ones (1 per second).
    slow = [(at(0), at(300))]
    times = [at(10 * i) for i in range(1, 31)] + [at(300 + i) for i in range(1, 22)]
    attempts = [*slow, (at(300), None)]
    assert views.eta_seconds(attempts, times, 51, 101, at(321)) == pytest.approx(50.0)


def add_attempt(mon: Monitor, task_id: str, status: str, reason: str, seconds: float = 5.0) -> None:
    now = datetime.now(UTC)
    with mon.db.session() as s:
        s.add(
            TaskAttempt(
                task_id=task_id,
                number=1,
                node="node-a",
                worker="slot-0",
                status=status,
                started_at=now - timedelta(seconds=seconds),
                ended_at=now,
                seconds=seconds,
                exit_code=-9 if status == "canceled" else 1,
                reason=reason,
                log_tail="Fra:1",
            )
        )


def test_reasons_retry_and_cancels_read_right(mon: Monitor) -> None:
    with mon.db.session() as s:
        paused = factories.job(
            s,
            "default",
            frames="1-4",
            chunk_size=2,
            status="paused",
            status_reason="paused by request",
            tasks=[TaskStatus.COMPLETED, TaskStatus.PAUSED],
        ).id
        failed = factories.job(
            s,
            "default",
            frames="1-4",
            chunk_size=2,
            status="failed",
            status_reason="2 chunks failed",
            tasks=[TaskStatus.FAILED, TaskStatus.CANCELED],
        ).id
    add_attempt(mon, f"{failed}-t0", "failed", "Blender exited with status 1")
    add_attempt(mon, f"{failed}-t1", "canceled", "Blender exited with status -9")
    mon.login(mon.admin)
    html = mon.http.get(f"/jobs/{paused}").text
    assert 'class="reason reason-info" id="job-reason"' in html
    assert 'data-action="retry" hidden' in html  # no failed chunk: nothing to retry
    html = mon.http.get(f"/jobs/{failed}").text
    assert 'class="reason reason-error" id="job-reason"' in html
    assert 'data-action="retry" hidden' not in html and "Retry failed chunks" in html
    chunk1 = re.search(r'<tr data-task="1">.*?</tr>', html, re.S)
    assert chunk1 and "status -9" not in chunk1.group(0) and 'class="reason-info">Canceled' in chunk1.group(0)
    assert "status -9" not in html  # nor in the log block's title
    assert 'class="reason-error">Blender exited with status 1' in html


def test_job_settings_priority_search_sort_and_the_end_of_the_list(mon: Monitor) -> None:
    with mon.db.session() as s:
        gpu = factories.job(
            s,
            "default",
            name="hero-gpu",
            priority=90,
            chunk_size=5,
            frames="1-10",
            tasks=[TaskStatus.QUEUED] * 2,
            settings={"resolution": "64x48", "samples": 16, "output_format": "EXR", "gpu": True, "max_attempts": 5},
        ).id
        factories.job(s, "default", name="crowd-cpu", priority=10)
    mon.login(mon.admin)
    html = mon.http.get(f"/jobs/{gpu}").text
    settings = re.search(r'<dl class="facts settings".*?</dl>', html, re.S)
    assert settings
    for text in ("64x48", ">16<", ">EXR<", "GPU", ">5<"):
        assert text in settings.group(0), text
    assert 'id="job-priority" data-f="priority">90<' in html
    listing = mon.http.get("/jobs?q=HERO").text  # search is case-blind, on names and ids
    assert listing.count('<tr data-job="') == 1 and "hero-gpu" in listing and "64x48" in listing
    assert mon.http.get(f"/jobs?q={gpu[-6:]}").text.count('<tr data-job="') == 1
    assert mon.http.get("/jobs?q=100%25").text.count('<tr data-job="') == 0  # % is a character, not a wildcard
    by_priority = mon.http.get("/jobs?sort=priority&dir=asc").text
    assert by_priority.index("crowd-cpu") < by_priority.index("hero-gpu")
    by_priority = mon.http.get("/jobs?sort=priority&dir=desc").text
    assert by_priority.index("hero-gpu") < by_priority.index("crowd-cpu")
    past = mon.http.get("/jobs?page=999").text
    assert "past the end" in past and "No jobs here yet" not in past and 'href="/jobs"' in past
    none = mon.http.get("/jobs?q=nothing-like-this").text
    assert "No jobs match" in none and "No jobs here yet" not in none
    zh = mon.http.get("/jobs?page=999", headers={"Accept-Language": "zh-CN"}).text
    assert "超出了列表末尾" in zh


def test_error_pages_keep_the_layout_and_there_is_a_favicon(mon: Monitor) -> None:
    mon.login(mon.admin)
    page = mon.http.get("/jobs/job-missing")
    assert page.status_code == 404
    for part in ('href="/workers"', 'action="/lang"', 'action="/logout"', 'rel="icon"'):
        assert part in page.text, part
    icon = mon.http.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    assert icon.content.startswith(b"<svg")
    assert mon.http.get("/static/favicon.svg").content == icon.content


def test_a_stream_ends_for_the_session_even_while_watching_many_topics(mon: Monitor) -> None:
    job = mon.add_job()
    token = mon.company_token("default")
    mon.login(token)
    html = mon.http.get("/jobs").text

    def logout_soon() -> None:
        time.sleep(0.5)
        mon.http.post("/logout", data={"csrf": csrf_of(html)})

    # A second client with the same cookies logs out while the first one streams.
    from fastapi.testclient import TestClient

    with TestClient(mon.http.app, base_url="http://127.0.0.1", cookies=dict(mon.http.cookies)) as other:
        with other.stream("GET", f"/events?watch=job:{job}&watch=list:") as r:
            threading.Thread(target=logout_soon, daemon=True).start()
            lines = r.iter_lines()
            started = time.monotonic()
            for line in lines:
                if line.startswith("event: end"):
                    assert json.loads(next(lines).removeprefix("data: ")) == {"reason": "session"}
                    break
                assert time.monotonic() - started < 10
            else:
                pytest.fail("the stream ended without saying why")


def test_small_costs_keep_enough_decimals_to_be_non_zero(mon: Monitor) -> None:
    from farm.db.models import Company
    from farm.metering import ledger

    job = mon.add_job(company="acme", frames=2)
    now = datetime.now(UTC)
    with mon.db.session() as s:
        co = s.get(Job, job).company_id
        s.get(Company, co).rates = {"gpu": 0.01}
        ledger.record(s, ledger.Usage(co, job, None, 1, "n", "gpu", 1.0, now, now, 60.0, "completed"))
    mon.login(mon.admin)
    html = mon.http.get("/usage").text
    assert "0.00017" in html  # 1 GPU-minute at 0.01 an hour, not "0.00"
    assert [views.cost_digits(c) for c in (0.0, 12.5, 0.05, 0.00017)] == [2, 2, 3, 5]


def test_each_attempts_log_downloads_and_other_companies_get_404(mon: Monitor) -> None:
    with mon.db.session() as s:
        job = factories.job(s, "acme", frames="1-4", chunk_size=2, status="failed", tasks=["failed", "completed"]).id
    add_attempt(mon, f"{job}-t0", "failed", "Blender exited with status 1")
    mon.login(mon.admin)
    html = mon.http.get(f"/jobs/{job}").text
    assert f'href="/jobs/{job}/log/0-1.txt" download' in html and 'id="log-search"' in html
    r = mon.http.get(f"/jobs/{job}/log/0-1.txt")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert "attachment" in r.headers["content-disposition"]
    assert r.text.splitlines()[0].startswith(f"# job {job} · chunk 0 (frames 1-2) · attempt 1") and "Fra:1" in r.text
    assert mon.http.get(f"/jobs/{job}/log/0-2.txt").status_code == 404
    assert "named <chunk>-<attempt>.txt" in mon.http.get(f"/jobs/{job}/log/x.txt").text.replace("&lt;", "<").replace(
        "&gt;", ">"
    )
    mon.login(mon.company_token("beta"))
    assert mon.http.get(f"/jobs/{job}/log/0-1.txt").status_code == 404


def test_huge_jobs_count_running_time_from_first_start_to_last_end(mon: Monitor, monkeypatch) -> None:
    with mon.db.session() as s:
        job = factories.job(s, "acme", frames="1-4", chunk_size=2, status="completed", tasks=["completed"] * 2).id
    add_attempt(mon, f"{job}-t0", "completed", "", seconds=30.0)  # ends now
    now = datetime.now(UTC)
    with mon.db.session() as s:
        s.add(
            TaskAttempt(
                task_id=f"{job}-t1", number=1, node="n", worker="w", status="completed",
                started_at=now - timedelta(seconds=100), ended_at=now - timedelta(seconds=90), reason="", log_tail="",
            )
        )  # fmt: skip
    with mon.db.session() as s:
        row = views.job_rows(s, factories_admin(mon), [job], now)[0]
        assert row.elapsed_s == pytest.approx(40.0, abs=0.5)  # 10 s + 30 s: the gap does not count
        monkeypatch.setattr(views, "MAX_INTERVALS", 1)
        row = views.job_rows(s, factories_admin(mon), [job], now)[0]
        assert row.elapsed_s == pytest.approx(100.0, abs=0.5)  # too many attempts to merge: first start to last end


def factories_admin(mon: Monitor):
    from farm.services.auth import resolve_token

    with mon.db.session() as s:
        return resolve_token(s, mon.admin, datetime.now(UTC))


HOSTILE = ["", "%00", "\x00", "'", "../../etc/passwd", "9" * 40, "-1", "<script>", "ü" * 300, "a&b=c", "%"]


def test_hostile_input_to_the_new_routes_gets_no_5xx(mon: Monitor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routes, "STREAM_MAX_S", 0.2)
    job = mon.add_job()
    mon.login(mon.admin)
    csrf = csrf_of(mon.http.get("/jobs").text)
    failures = []
    for value in HOSTILE:
        requests: list[tuple[str, str, dict[str, Any]]] = [
            ("GET", "/jobs", {"params": {"q": value, "sort": value, "dir": value, "status": value}}),
            ("GET", f"/jobs/{job}/log/{quote(value, safe='')}", {}),
            ("POST", "/jobs/bulk", {"data": {"csrf": csrf, "action": value, "job": value, "next": value}}),
        ]
        if value:  # a stream for each; an empty topic is refused before the stream starts
            requests.append(("GET", "/events", {"params": {"watch": [f"list:{value}", f"job:{value}"]}}))
        requests.append(("GET", "/events", {"params": {"watch": value}}))
        for method, path, extra in requests:
            with mon.http.stream(method, path, **extra) as r:
                if r.status_code >= 500:
                    failures.append(f"{method} {path} {extra} -> {r.status_code}")
    assert not failures, failures


def test_the_stream_speaks_the_pages_language(mon: Monitor, short_streams: None) -> None:
    job = mon.add_job()
    mon.login(mon.admin)
    assert 'data-locale="zh"' in mon.http.get(f"/jobs/{job}", headers={"Accept-Language": "zh-CN"}).text
    url = "/events?" + urlencode([("watch", f"job:{job}"), ("lang", "zh")])
    with mon.http.stream("GET", url) as r:
        for line in r.iter_lines():
            if line.startswith("data: ") and '"kind":"job"' in line:
                assert json.loads(line.removeprefix("data: "))["data"]["status_label"] == "排队中"
                break
    r = mon.http.get("/events?" + urlencode([("watch", f"job:{job}"), ("lang", "xx")]))  # unknown: the viewer's
    assert '"status_label":"Queued"' in r.text


def test_the_usage_page_is_live_and_refused_to_artists(mon: Monitor, short_streams: None) -> None:
    job = mon.add_job(company="acme", frames=2)
    month = datetime.now(UTC).strftime("%Y-%m")
    mon.login(mon.admin)
    assert f'data-watch="usage:{month}"' in mon.http.get("/usage").text

    def metered() -> None:
        from farm.metering import ledger

        now = datetime.now(UTC)
        with mon.db.session() as s:
            co = s.get(Job, job).company_id
            ledger.record(s, ledger.Usage(co, job, None, 1, "n", "gpu", 1.0, now, now, 7200.0, "completed"))

    updates, _, acted = read_stream(mon, [f"usage:{month}"], metered)
    assert "2.00" not in updates[0]["data"]["html"]
    later = next(u for u in updates[1:] if "2.00" in u["data"]["html"])
    assert later["at"] - acted < 1.0
    mon.login(mon.company_token("acme"))  # an artist: no usage
    updates, _, _ = read_stream(mon, [f"usage:{month}"])
    assert [u["kind"] for u in updates] == ["gone"]
    assert 400 <= mon.http.get("/events?watch=usage:2026-13").status_code < 500
