"""Graceful stop of the embedded farm (``farm server``), with monitor event streams open: on SIGTERM the scheduler
stops handing out chunks at once, the streams end, the process exits within 10 s, the running chunk is requeued
(not lost) and the lease released; a restart on the same data dir finishes the job with every chunk completed
once. The same run checks the access log: one JSON line per request, and the token never in it."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from farm.client import FarmClient
from farm.contract import JobCreate, ManifestEntry
from farm.db.engine import Database
from farm.db.models import SchedulerLease, Task, TaskAttempt

pytestmark = [pytest.mark.ray]

TOKEN = "farm_graceful-stop-admin-token-0123456789"  # noqa: S105 - a test's token
FRAMES = "1-30"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.05)
    raise TimeoutError(f"{what}: not after {timeout}s (last: {last!r})")


class Server:
    def __init__(self, data: Path, log: Path) -> None:
        self.data, self.log = data, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FARM_", "RAY_"))}
        env.update(
            FARM_RENDERER="sleep:0.25",
            FARM_BOOTSTRAP_ADMIN_TOKEN=TOKEN,
            FARM_LOG_LEVEL="INFO",
            FARM_WRITE_CLI_CONFIG="false",
        )
        self.proc = subprocess.Popen(
            [str(BIN / "farm"), "server", "--port", str(self.port), "--data-dir", str(data), "--slots", "1"],
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_for("farm server", lambda: httpx.get(f"{self.url}/healthz").status_code == 200, 120)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def open_stream(url: str, cookies: httpx.Cookies, path: str) -> dict[str, Any]:
    """Read an event stream in a thread; ``ended`` is set when the server closes it."""
    out: dict[str, Any] = {"events": 0, "ended": threading.Event()}

    def run() -> None:
        try:
            with httpx.Client(base_url=url, cookies=cookies, timeout=httpx.Timeout(5, read=120)) as http:
                with http.stream("GET", path, headers={"Accept": "text/event-stream"}) as answer:
                    out["status"] = answer.status_code
                    for line in answer.iter_lines():
                        if line.startswith("event:"):
                            out["events"] += 1
        except httpx.HTTPError as exc:
            out["error"] = repr(exc)
        finally:
            out["ended"].set()

    threading.Thread(target=run, daemon=True).start()
    return out


def login(url: str) -> httpx.Cookies:
    with httpx.Client(base_url=url) as http:
        page = http.get("/login")
        match = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert match is not None
        http.post("/login", data={"token": TOKEN, "csrf": match.group(1)}, follow_redirects=False)
        return http.cookies


def attempts(db: Database) -> list[TaskAttempt]:
    with db.session() as s:
        return list(s.scalars(select(TaskAttempt)))


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("graceful")
    data, log = work / "data", work / "server.log"
    server = Server(data, log)
    seen: dict[str, Any] = {"data": data, "log": log}
    try:
        client = FarmClient(server.url, TOKEN)
        blend = b"BLENDER-v500 stand-in: the sleep renderer does not read it"
        sha = hashlib.sha256(blend).hexdigest()
        (work / "scene.blend").write_bytes(blend)
        client.upload_blob(work / "scene.blend", sha, len(blend))
        job = client.create_job(
            JobCreate(
                name="graceful",
                blend_file="scene.blend",
                manifest={"scene.blend": ManifestEntry(sha256=sha, size=len(blend))},
                frames=FRAMES,
                chunk_size=2,
            )
        )
        seen["job"] = job.id
        cookies = login(server.url)
        streams = [
            open_stream(server.url, cookies, f"/jobs/{job.id}/events"),
            open_stream(server.url, cookies, f"/events/jobs?ids={job.id}"),
        ]
        db = Database(f"sqlite:///{data / 'farm.db'}")
        wait_for(
            "two chunks done and one rendering",
            lambda: (
                sum(t.status == "completed" for t in client.tasks(job.id).tasks) >= 2
                and any(t.status == "running" for t in client.tasks(job.id).tasks)
            ),
            60,
        )
        assert all(not s["ended"].is_set() for s in streams), "the streams were open when the signal came"
        seen["term_at"] = time.time()
        server.proc.send_signal(signal.SIGTERM)
        seen["rc"] = server.proc.wait(30)
        seen["exit_s"] = time.time() - seen["term_at"]
        seen["ray_temp_left"] = Path(f"/tmp/farm-ray-{server.proc.pid}").exists()  # noqa: S108
        seen["streams"] = [{"ended": s["ended"].wait(5), "events": s["events"]} for s in streams]
        seen["attempts"] = attempts(db)
        with db.session() as s:
            seen["in_flight"] = list(s.scalars(select(Task.id).where(Task.status.in_(["dispatched", "running"]))))
            lease = s.get(SchedulerLease, "scheduler")
            seen["lease_holder"] = lease.holder if lease else None
        # A restart on the same data dir leads at once (released lease) and finishes the job.
        again = Server(data, log)
        try:
            restarted = time.time()
            done = wait_for(
                "the job to complete", lambda: FarmClient(again.url, TOKEN).job(job.id).status == "completed", 90
            )
            seen["restart_done_s"] = time.time() - restarted if done else None
            seen["final_attempts"] = attempts(db)
            seen["frames"] = sorted(f.frame for f in FarmClient(again.url, TOKEN).frames(job.id).frames)
        finally:
            again.proc.send_signal(signal.SIGTERM)
            again.proc.wait(30)
        db.dispose()
        yield seen
    finally:
        server.stop()


def test_sigterm_exits_within_10_s_with_event_streams_open(stopped: dict[str, Any]) -> None:
    assert stopped["rc"] == 0 and stopped["exit_s"] <= 10, (stopped["rc"], stopped["exit_s"])
    assert all(s["ended"] for s in stopped["streams"]), stopped["streams"]
    assert all(s["events"] > 0 for s in stopped["streams"])  # they were live streams, not refused ones


def test_nothing_is_left_in_tmp_after_the_server_stops(stopped: dict[str, Any]) -> None:
    assert not stopped["ray_temp_left"], "Ray's session folder was left in /tmp"


def test_no_chunk_is_handed_out_after_sigterm(stopped: dict[str, Any]) -> None:
    late = [a for a in stopped["attempts"] if a.started_at.timestamp() > stopped["term_at"] + 0.5]
    assert late == []


def test_running_chunks_are_requeued_not_lost(stopped: dict[str, Any]) -> None:
    assert stopped["in_flight"] == []
    requeued = [a for a in stopped["attempts"] if a.status == "lost"]
    assert requeued and all(a.ended_at is not None for a in requeued)
    assert stopped["lease_holder"] == ""  # released: the next scheduler needs not wait out a lease


def test_restart_finishes_the_job_with_every_chunk_completed_once(stopped: dict[str, Any]) -> None:
    assert stopped["frames"] == list(range(1, 31))
    completed: dict[str, int] = {}
    for a in stopped["final_attempts"]:
        if a.status == "completed":
            completed[a.task_id] = completed.get(a.task_id, 0) + 1
    assert len(completed) == 15 and set(completed.values()) == {1}


def test_requests_are_logged_as_json_without_the_token(stopped: dict[str, Any]) -> None:
    text = Path(stopped["log"]).read_text(errors="replace")
    assert TOKEN not in text
    lines = [json.loads(line.split("farm.access: ", 1)[1]) for line in text.splitlines() if "farm.access: " in line]
    jobs = [line for line in lines if line["route"] == "/api/v1/jobs" and line["method"] == "POST"]
    assert jobs and jobs[0]["status"] == 201 and jobs[0]["ms"] >= 0
    assert any(line["path"] == "/login" and line["method"] == "POST" for line in lines)
    assert {"method", "path", "route", "status", "ms", "bytes", "client"} <= lines[0].keys()
