"""A dispatch pass reads the rows its reports touch in slices: eight finished chunks of 10,000 frames (the largest
chunk a job may ask for) pass PostgreSQL's 65,535 bound parameters if read in one IN list."""

from __future__ import annotations

from datetime import UTC, datetime

from farm.db.engine import Database
from farm.db.models import Task
from farm.lifecycle import attempts
from tests import factories

pytest_plugins = ["tests.db.backends"]  # db_url (SQLite and PostgreSQL), postgres

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_a_pass_of_eight_ten_thousand_frame_chunks_is_preloaded(db_url):
    db = Database(db_url)
    db.migrate()
    try:
        with db.session() as s:
            job = factories.job(
                s, "big", frames="1-80000", chunk_size=10_000, status="active", tasks=["running"] * 8, now=NOW
            )
            factories.frames(s, job, [70_001], NOW, task_id=f"{job.id}-t7")
            ids = [f"{job.id}-t{i}" for i in range(8)]
        with db.session() as s:
            attempts.preload(s, ids)
            task = s.get(Task, ids[7])
            assert task is not None
            missing = attempts.missing_frames(s, task)
            assert len(missing) == 9_999 and 70_001 not in missing
    finally:
        db.dispose()
