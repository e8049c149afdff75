"""First start and operations settings: processes bootstrapping together on an empty database (several rounds,
both backends) make one default company and one admin token; ``FARM_LOG_LEVEL`` and ``FARM_API_WORKERS`` are
read; the scheduler's health endpoint answers the probes by role."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import func, select

from farm.clock import SystemClock
from farm.db.engine import Database
from farm.db.models import ApiToken, Company
from farm.runtime.bootstrap import bootstrap
from farm.runtime.health import Health, HealthServer
from farm.runtime.serving import configure_logging
from farm.settings import ServerSettings
from tests.db.backends import db_url, postgres  # noqa: F401 - fixtures

TOKEN = "farm_first-start-admin-token-0123456789"  # noqa: S105 - a test's token
PROCESSES = 4
ROUNDS = 3


def _start(url: str, data_dir: str, go: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    """One process's start: migrate and bootstrap, like ``farm api`` and ``farm scheduler`` do."""
    db = Database(url)
    go.wait(30)
    db.migrate()
    bootstrap(db, SystemClock(), Path(data_dir), TOKEN)
    db.dispose()


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_processes_starting_together_on_an_empty_database_bootstrap_once(
    db_url: str,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
    round_: int,
) -> None:
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    procs = [ctx.Process(target=_start, args=(db_url, str(tmp_path / f"pod-{i}"), go)) for i in range(PROCESSES)]
    for proc in procs:
        proc.start()
    time.sleep(0.5)  # all of them waiting at the start line
    go.set()
    for proc in procs:
        proc.join(60)
    assert [proc.exitcode for proc in procs] == [0] * PROCESSES
    db = Database(db_url)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Company)) == 1
        assert s.scalar(select(func.count()).select_from(ApiToken)) == 1
    db.dispose()
    assert {(tmp_path / f"pod-{i}" / "admin.token").read_text().strip() for i in range(PROCESSES)} == {TOKEN}


def test_log_level_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FARM_LOG_LEVEL", "warning")
    configure_logging(ServerSettings())
    assert logging.getLogger().level == logging.WARNING
    monkeypatch.setenv("FARM_LOG_LEVEL", "DEBUG")
    configure_logging(ServerSettings())
    assert logging.getLogger().level == logging.DEBUG
    monkeypatch.setenv("FARM_LOG_LEVEL", "loud")
    with pytest.raises(ValueError, match="log_level"):
        ServerSettings()
    configure_logging(ServerSettings(log_level="INFO"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return found


def test_api_workers_setting_starts_that_many_worker_processes(tmp_path: Path) -> None:
    port = free_port()
    # PROMETHEUS_MULTIPROC_DIR is left unset (an empty value would make prometheus_client write its files into
    # the working directory): the command makes its own folder in the data dir.
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        FARM_API_WORKERS="2",
        FARM_SECRET_KEY="first-start-test-secret-key",
        FARM_DATA_DIR=str(tmp_path),
        FARM_BOOTSTRAP_ADMIN_TOKEN=TOKEN,
    )
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "farm"), "api", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        answered = False
        while time.monotonic() < deadline and not answered:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:  # noqa: S310
                    answered = answer.status == 200
            except OSError:
                time.sleep(0.2)
        assert answered, "the API did not answer"
        cmdlines = {pid: Path(f"/proc/{pid}/cmdline").read_bytes() for pid in children(proc.pid)}
        python_workers = [pid for pid, cmd in cmdlines.items() if b"spawn_main" in cmd]
        assert len(python_workers) == 2, cmdlines
        assert (tmp_path / "api-metrics").is_dir()  # their metrics are summed across workers
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def test_health_endpoint_answers_by_role() -> None:
    state = {"health": Health(role="starting", generation=None, loop_age_s=None, seen_age_s=0.0)}
    server = HealthServer("127.0.0.1", 0, lambda: state["health"], stuck_s=60, stale_s=30)

    def get(path: str) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=2) as answer:  # noqa: S310
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    try:
        assert (get("/livez"), get("/readyz")) == (200, 503)  # starting: alive, not ready
        state["health"] = Health(role="standby", generation=None, loop_age_s=None, seen_age_s=1.0)
        assert (get("/livez"), get("/readyz")) == (200, 200)
        state["health"] = Health(role="leader", generation=3, loop_age_s=0.2, seen_age_s=1.0)
        assert (get("/livez"), get("/readyz")) == (200, 200)
        state["health"] = Health(role="leader", generation=3, loop_age_s=90.0, seen_age_s=1.0)  # loop hung
        assert (get("/livez"), get("/readyz")) == (503, 503)
        state["health"] = Health(role="standby", generation=None, loop_age_s=None, seen_age_s=120.0)  # no DB
        assert (get("/livez"), get("/readyz")) == (503, 503)
        state["health"] = Health(role="lost", generation=3, loop_age_s=1.0, seen_age_s=1.0)
        assert get("/readyz") == 503
        assert get("/nothing") == 404
    finally:
        server.close()
