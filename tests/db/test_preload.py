"""A dispatch pass reads the rows its reports touch in slices: eight finished chunks of 10,000 frames (the largest
chunk a job may ask for) pass PostgreSQL's 65,535 bound parameters if read in one IN list."""

from __future__ import annotations

from datetime import UTC, datetime

from farm.db.engine import Database
from farm.db.models import Frame, Job, Task
from farm.lifecycle import attempts
from farm.lifecycle.transitions import recount
from farm.services.auth import ensure_company

pytest_plugins = ["tests.db.backends"]  # db_url (SQLite and PostgreSQL), postgres

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_a_pass_of_eight_ten_thousand_frame_chunks_is_preloaded(db_url):
    db = Database(db_url)
    db.migrate()
    try:
        with db.session() as s:
            company = ensure_company(s, "big", NOW)
            job = Job(id="job-big", company_id=company.id, name="big", status="active", status_reason="",
                      priority=50, frames="1-80000", chunk_size=10_000, blend_file="s.blend", manifest={},
                      settings={}, frames_total=80_000, created_at=NOW)
            s.add(job)
            s.flush()
            for i in range(8):
                s.add(Task(id=f"t{i}", job_id=job.id, index=i, frames=list(range(i * 10_000 + 1, (i + 1) * 10_000 + 1)),
                           status="running", updated_at=NOW))
            s.add(Frame(job_id=job.id, frame=70_001, task_id="t7", key="k", name="n", size=1, sha256="ab" * 32,
                        created_at=NOW))
            s.flush()
            recount(s, job)
        with db.session() as s:
            attempts.preload(s, [f"t{i}" for i in range(8)])
            task = s.get(Task, "t7")
            assert task is not None
            missing = attempts.missing_frames(s, task)
            assert len(missing) == 9_999 and 70_001 not in missing
    finally:
        db.dispose()
