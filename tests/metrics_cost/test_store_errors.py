"""Storage errors are counted in every process that talks to the store (issue 15): a render worker counts its
failed store calls and reports them in its facts and polls; the scheduler adds what is new to the database; every
API replica exports them as ``farm_cluster_storage_errors_total``. A real worker (no Ray: the plain class) with a
local store whose input blob is gone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from farm.clock import SystemClock
from farm.db.engine import Database
from farm.domain.attempts import Assignment, Outcome
from scheduler.store_errors import StoreErrors
from storage.factory import StoreConfig
from web import metrics
from workers.actor import RenderWorker, WorkerConfig


@pytest.fixture()
def db(tmp_path: Path) -> Any:
    database = Database(f"sqlite:///{tmp_path / 'farm.db'}")
    database.migrate()
    yield database
    database.dispose()


def exported(db: Database) -> dict[tuple[str, str], float]:
    from prometheus_client.parser import text_string_to_metric_families

    body = metrics.render(metrics.FarmCollector(db, SystemClock())).decode()
    return {
        (s.labels["process"], s.labels["operation"]): s.value
        for family in text_string_to_metric_families(body)
        if family.name == "farm_cluster_storage_errors"
        for s in family.samples
    }


def test_a_workers_failed_store_calls_reach_metrics_through_the_scheduler(tmp_path, db):
    config = WorkerConfig(
        name="n1/cpu",
        store=StoreConfig(backend="local", root=str(tmp_path / "objects")),
        cache_dir=str(tmp_path / "cache"),
        cache_bytes=10**9,
        work_dir=str(tmp_path / "work"),
        renderer="sleep:0",
    )
    worker = RenderWorker(config)
    try:
        missing = {"scene.blend": {"sha256": "ab" * 32, "size": 5}}  # never uploaded
        assignment = Assignment("job-1", "job-1-t0", 1, "co-1", "scene.blend", missing, [1], {})
        facts = worker.render(assignment)
        assert facts.outcome is not Outcome.COMPLETED
        assert facts.storage_errors.get("get_file", 0) >= 1, facts.storage_errors
        assert worker.poll().storage_errors == facts.storage_errors  # cumulative, in every poll too
    finally:
        worker.close()
    errors = StoreErrors(db, SystemClock(), interval_s=0)
    errors.worker("n1/cpu", facts.storage_errors)
    errors.worker("n1/cpu", facts.storage_errors)  # the same totals again: nothing new
    errors.own("stat")  # the scheduler's own store failed once
    errors()
    failed = facts.storage_errors["get_file"]
    assert exported(db)[("workers", "get_file")] == failed
    assert exported(db)[("scheduler", "stat")] == 1
    assert exported(db)[("workers", "put_file")] == 0  # every series exists from the start
    # A replaced actor counts from zero again, under its own key: its first report is all new.
    errors.worker("n1/cpu#2", {"get_file": 1})
    errors()
    assert exported(db)[("workers", "get_file")] == failed + 1
