"""The running totals cost one read per transaction and never flush the pass around them (issue 12, throughput):
a dispatch pass that records many frames and chunks observes several series; each observation used to read its
series' rows, and each read flushed what the pass had changed so far (the same job row written several times).
On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event

from farm.db.engine import Database
from farm.db.models import Job
from farm.lifecycle import tallies
from tests import factories

pytest_plugins = ["tests.db.backends"]  # db_url: SQLite and PostgreSQL

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture()
def db(db_url: str) -> Any:
    database = Database(db_url)
    database.migrate()
    yield database
    database.dispose()


def test_observations_of_every_series_read_the_totals_once_and_flush_nothing(db):
    with db.session() as s:
        job = factories.job(s, "acme", frames="1-2", now=NOW)
        job_id, company_id = job.id, job.company_id
        # A total that exists already: it must be found (and added to), not duplicated.
        tallies.observe(s, tallies.FRAMES_RENDERED, company_id, [1.0])
    statements: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()).lower())

    event.listen(db.engine, "before_cursor_execute", note)
    try:
        with db.session() as s:
            job = s.get(Job, job_id)
            assert job is not None
            statements.clear()
            job.frames_done += 1  # a change the pass made before it observes: written once, at the commit
            tallies.observe(s, tallies.FRAMES_RENDERED, company_id, [1.0, 1.0])
            tallies.observe(s, tallies.FRAME_RENDER_SECONDS, company_id, [0.3, 7.0], label="cpu")
            tallies.observe(s, tallies.RESOURCE_SECONDS, company_id, [12.0], label="cpu")
            tallies.chunk_waited(s, company_id, 4.0)
            tallies.observe(s, tallies.FRAMES_RENDERED, company_id, [1.0])
            before_commit = list(statements)
            s.flush()
            job_updates = [q for q in statements if q.startswith("update jobs")]
    finally:
        event.remove(db.engine, "before_cursor_execute", note)
    reads = [q for q in before_commit if q.startswith("select") and "metric_totals" in q]
    assert len(reads) == 1, before_commit
    assert not [q for q in before_commit if q.startswith(("update", "insert"))], before_commit
    assert len(job_updates) == 1
    with db.session() as s:
        totals = {(t.company_id, t.label): t for t in tallies.read(s, tallies.FRAMES_RENDERED)}
        assert totals[(company_id, "")].count == 4
        seconds = {t.label: t for t in tallies.read(s, tallies.FRAME_RENDER_SECONDS)}
        assert seconds["cpu"].count == 2 and seconds["cpu"].total == pytest.approx(7.3)
        assert seconds["cpu"].buckets[tallies.FRAME_SECONDS_BUCKETS.index(0.5)] == 1
        assert [t.total for t in tallies.read(s, tallies.RESOURCE_SECONDS)] == [12.0]
        assert [t.count for t in tallies.read(s, tallies.QUEUE_WAIT_SECONDS)] == [1]
        assert s.get(Job, job_id).frames_done == 1
