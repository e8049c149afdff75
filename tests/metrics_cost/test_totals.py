"""Metrics whose cost does not grow with history (issue 15): the totals ``/metrics`` reads are kept as frames are
stored, chunks dispatched and usage metered; a scrape never aggregates the frames or the ledger's history; the
migration builds the totals of an existing database; slots in use are gauges per company. On SQLite and PostgreSQL.
(``bench/metrics.py`` measures the scrape with a million frame rows.)"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import event, select, text

from farm.clock import SystemClock
from farm.db.engine import Database, alembic_config
from farm.db.models import Job, Task
from farm.domain.attempts import StoredFrame
from farm.domain.states import JobStatus, TaskStatus
from farm.lifecycle import attempts, tallies
from farm.lifecycle.transitions import set_task_status
from farm.metering import ledger
from farm.services import nodeview
from farm.services.nodeview import Snapshot, WorkerState
from tests import factories
from web import metrics

pytest_plugins = ["tests.db.backends"]  # db_url: SQLite and PostgreSQL

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture()
def db(db_url: str) -> Any:
    database = Database(db_url)
    database.migrate()
    yield database
    database.dispose()


def scrape(db: Database, snap: Snapshot | None = None) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    source = (lambda: snap) if snap is not None else None
    body = metrics.render(metrics.FarmCollector(db, SystemClock(), source)).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def value(parsed: dict[Any, float], name: str, **labels: str) -> float:
    return parsed[(name, frozenset(labels.items()))]


def stored(task: Task, attempt: int, frame: int, size: int, seconds: float, device: str = "CPU") -> StoredFrame:
    return StoredFrame(task.id, attempt, frame, f"k/{frame}", f"f{frame}.png", size, "0" * 64, device, seconds)


def test_frames_stored_keep_the_totals_bytes_and_last_frame_time(db):
    with db.session() as s:
        job = factories.job(s, "acme", frames="1-4", chunk_size=4, status=JobStatus.ACTIVE, tasks=["running"], now=NOW)
        task = s.get(Task, f"{job.id}-t0")
        attempts.record_frames(s, task, 0, [stored(task, 0, 1, 100, 0.3), stored(task, 0, 2, 200, 2.0)], NOW)
        # The same frame stored again by a retry: one frame more rendered, not one more frame; its new size counts.
        later = NOW + timedelta(minutes=1)
        attempts.record_frames(s, task, 0, [stored(task, 0, 2, 250, 40.0, "OPTIX")], later)
        job_id = job.id
    with db.session() as s:
        row = s.get(Job, job_id)
        assert (row.frames_done, row.frames_bytes) == (2, 350)
        assert (
            row.last_frame_at is not None and abs((row.last_frame_at.replace(tzinfo=UTC) - later).total_seconds()) < 1
        )
    parsed = scrape(db)
    assert value(parsed, "farm_frames_rendered_total", company="acme") == 2
    assert value(parsed, "farm_frame_render_seconds_count", company="acme", device="cpu") == 2
    assert value(parsed, "farm_frame_render_seconds_bucket", company="acme", device="cpu", le="0.5") == 1
    assert value(parsed, "farm_frame_render_seconds_sum", company="acme", device="cpu") == pytest.approx(2.3)
    assert value(parsed, "farm_frame_render_seconds_bucket", company="acme", device="optix", le="30.0") == 0
    assert value(parsed, "farm_frame_render_seconds_bucket", company="acme", device="optix", le="60.0") == 1
    assert value(parsed, "farm_storage_bytes", company="acme") == 350
    progress = value(parsed, "farm_job_last_progress_timestamp_seconds", company="acme", job=job_id)
    assert progress == pytest.approx(later.timestamp(), abs=1)


def test_queue_wait_is_observed_for_every_chunk_at_its_dispatch(db):
    with db.session() as s:
        job = factories.job(s, "acme", frames="1-2", chunk_size=1, now=NOW)
        first, second = (s.get(Task, f"{job.id}-t{i}") for i in range(2))
        set_task_status(first, TaskStatus.DISPATCHED, NOW + timedelta(seconds=3), job=job)
        set_task_status(second, TaskStatus.DISPATCHED, NOW + timedelta(seconds=100), job=job)
        # A retry waits again: from its soft failure to its next dispatch.
        set_task_status(first, TaskStatus.RUNNING, NOW + timedelta(seconds=4), job=job)
        set_task_status(first, TaskStatus.SOFT_FAILED, NOW + timedelta(seconds=10), job=job)
        set_task_status(first, TaskStatus.DISPATCHED, NOW + timedelta(seconds=2000), job=job)
    parsed = scrape(db)
    assert value(parsed, "farm_queue_wait_seconds_count", company="acme") == 3
    assert value(parsed, "farm_queue_wait_seconds_sum", company="acme") == pytest.approx(3 + 100 + 1990)
    assert value(parsed, "farm_queue_wait_seconds_bucket", company="acme", le="5.0") == 1
    assert value(parsed, "farm_queue_wait_seconds_bucket", company="acme", le="120.0") == 2
    assert value(parsed, "farm_queue_wait_seconds_bucket", company="acme", le="1800.0") == 2
    assert value(parsed, "farm_queue_wait_seconds_bucket", company="acme", le="3600.0") == 3


def test_metered_usage_adds_to_the_running_resource_seconds(db):
    with db.session() as s:
        co = factories.company(s, "acme")
        for resource, count, seconds in [("cpu", 4.0, 10.0), ("gpu", 1.0, 30.0), ("cpu", 2.0, 5.0), ("storage", 9, 9)]:
            ledger.record(
                s,
                ledger.Usage(co.id, "j", "t", 1, "n", resource, count, NOW, NOW, seconds, "completed"),
            )
    parsed = scrape(db)
    assert value(parsed, "farm_resource_seconds_total", company="acme", resource="cpu") == 50
    assert value(parsed, "farm_resource_seconds_total", company="acme", resource="gpu") == 30


def test_slots_and_resources_in_use_are_gauges_per_company(db):
    with db.session() as s:
        a = factories.job(s, "acme", frames="1-3", status=JobStatus.ACTIVE, tasks=["running"] * 3)
        b = factories.job(s, "beta", frames="1", status=JobStatus.ACTIVE, tasks=["running"])
    snap = Snapshot(
        workers=(
            WorkerState("n1/gpu-0", "n1", "busy", f"{a.id}-t0", cpus=1.0, gpus=1.0),
            WorkerState("n1/cpu", "n1", "busy", f"{a.id}-t1", cpus=6.0),
            WorkerState("n2/cpu", "n2", "busy", f"{b.id}-t0", cpus=2.0),
            WorkerState("n2/gpu-0", "n2", "idle", None, cpus=1.0, gpus=1.0),
        )
    )
    nodeview.write(db, snap, NOW)
    read_back = nodeview.read(db, NOW)
    assert {(w.name, w.cpus, w.gpus) for w in read_back.workers} == {(w.name, w.cpus, w.gpus) for w in snap.workers}
    for parsed in (scrape(db, snap), scrape(db, read_back)):  # in-process pool and heartbeat rows alike
        assert value(parsed, "farm_slots_in_use", company="acme", resource="gpu") == 1
        assert value(parsed, "farm_slots_in_use", company="acme", resource="cpu") == 1
        assert value(parsed, "farm_resources_in_use", company="acme", resource="cpu") == 7
        assert value(parsed, "farm_resources_in_use", company="acme", resource="gpu") == 1
        assert value(parsed, "farm_resources_in_use", company="beta", resource="cpu") == 2
        assert value(parsed, "farm_resources_in_use", company="beta", resource="gpu") == 0


def test_a_scrape_reads_no_history(db):
    """Every statement of a scrape: none reads the frames, none the ledger outside this month's budget check,
    and the tasks table only for the chunks still live (through its status index)."""
    with db.session() as s:
        job = factories.job(
            s, factories.company(s, "acme", gpu_hours_budget=5.0), frames="1-4", tasks=["completed"] * 4
        )
        factories.frames(s, job, range(1, 5), size=10, render_seconds=1.0)
    statements: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()).lower())

    event.listen(db.engine, "before_cursor_execute", note)
    try:
        parsed = scrape(db)
    finally:
        event.remove(db.engine, "before_cursor_execute", note)
    assert value(parsed, "farm_frames_rendered_total", company="acme") == 4
    assert statements
    assert not [q for q in statements if re.search(r"\bframes\b", q.split(" where ")[0].split(" from ", 1)[-1])]
    for q in statements:
        if "usage_ledger" in q:
            assert "started_at >=" in q and "started_at <" in q, q  # this month only (budgets)
        if re.search(r"from tasks\b", q):
            assert "tasks.status in" in q, q


def test_the_migration_builds_the_totals_of_an_existing_database(db_url):
    cfg = alembic_config(db_url)
    command.upgrade(cfg, "0010_frame_layers")
    db = Database(db_url)
    try:
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO companies (id, name, cpu_share, gpu_share, min_slots, created_at) "
                    "VALUES ('c1', 'acme', 1, 1, 0, :now)"
                ),
                {"now": NOW},
            )
        with db.engine.begin() as conn:  # the schema of 0010: no ORM (the models are the newest schema's)
            conn.execute(
                text(
                    "INSERT INTO jobs (id, company_id, name, status, status_reason, priority, frames, chunk_size,"
                    " blend_file, manifest, settings, frames_total, created_at)"
                    " VALUES ('j1', 'c1', 'old', 'completed', '', 50, '1-3', 3, 'a.blend', '{}', '{}', 3, :now)"
                ),
                {"now": NOW},
            )
        with db.engine.begin() as conn:
            for frame, seconds in [(1, 0.2), (2, 0.7), (3, 4.0)]:
                conn.execute(
                    text(
                        "INSERT INTO frames (job_id, frame, task_id, key, name, size, sha256, device, render_seconds,"
                        " created_at) VALUES ('j1', :f, 't', 'k', 'n', 100, 's', 'CPU', :sec, :now)"
                    ),
                    {"f": frame, "sec": seconds, "now": NOW + timedelta(seconds=frame)},
                )
            conn.execute(
                text(
                    "INSERT INTO usage_ledger (company_id, job_id, node, resource, count, started_at, ended_at,"
                    " seconds, outcome) VALUES ('c1', 'j1', 'n', 'cpu', 4, :now, :now, 25, 'completed')"
                ),
                {"now": NOW},
            )
        db.migrate()
        with db.session() as s:
            job = s.get(Job, "j1")
            assert job.frames_bytes == 300
            render = {t.label: t for t in tallies.read(s, tallies.FRAME_RENDER_SECONDS)}["cpu"]
            assert (render.count, render.total) == (3, pytest.approx(4.9))
            assert render.buckets[tallies.FRAME_SECONDS_BUCKETS.index(0.5)] == 1
            assert render.buckets[tallies.FRAME_SECONDS_BUCKETS.index(5.0)] == 3
            [frames] = tallies.read(s, tallies.FRAMES_RENDERED)
            assert frames.count == 3
            [used] = tallies.read(s, tallies.RESOURCE_SECONDS)
            assert (used.label, used.total) == ("cpu", 100.0)
            assert s.scalar(select(Job.last_frame_at)) is not None
    finally:
        db.dispose()


def test_chunks_per_call_is_a_histogram_by_company(db):
    with db.session() as s:
        factories.company(s, "acme")
        tallies.observe(s, tallies.CHUNKS_PER_CALL, "acme", [1.0, 1.0, 16.0, 32.0])
    parsed = scrape(db)
    assert value(parsed, "farm_dispatch_chunks_per_call_count", company="acme") == 4
    assert value(parsed, "farm_dispatch_chunks_per_call_sum", company="acme") == 50
    assert value(parsed, "farm_dispatch_chunks_per_call_bucket", company="acme", le="1.0") == 2
    assert value(parsed, "farm_dispatch_chunks_per_call_bucket", company="acme", le="16.0") == 3
    assert value(parsed, "farm_dispatch_chunks_per_call_bucket", company="acme", le="32.0") == 4
