"""Creating a job writes its chunks past SQLAlchemy's type processing (``farm.db.bulk``): what is read back
through the ORM must be exactly what an ORM insert would have stored, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from farm.contract import JobCreate, ManifestEntry
from farm.db.engine import Database
from farm.db.models import Blob, Task
from farm.domain.states import TaskStatus
from farm.services import jobs
from farm.services.auth import Principal, Role, ensure_company

pytest_plugins = ["tests.db.backends"]  # db_url (SQLite and PostgreSQL), postgres

NOW = datetime(2026, 11, 30, 12, 0, 1, 250_000, tzinfo=UTC)
SHA = "ab" * 32


def test_chunks_written_in_bulk_read_back_as_an_orm_insert_would(db_url):
    db = Database(db_url)
    db.migrate()
    try:
        with db.session() as s:
            company = ensure_company(s, "bulk", NOW)
            s.add(Blob(company_id=company.id, sha256=SHA, size=3, created_at=NOW))
            who = Principal(token_id="t", company_id=company.id, company="bulk", role=Role.ARTIST)
        spec = JobCreate(
            name="bulk",
            blend_file="s.blend",
            manifest={"s.blend": ManifestEntry(sha256=SHA, size=3)},
            frames="1-7,10-20x5,100",
            chunk_size=3,
        )
        with db.session() as s:
            job_id = jobs.create_job(s, who, spec, NOW).id
        with db.session() as s:
            tasks = list(s.scalars(select(Task).where(Task.job_id == job_id).order_by(Task.index)))
            assert [t.frames for t in tasks] == [[1, 2, 3], [4, 5, 6], [7, 10, 15], [20, 100]]
            assert [t.index for t in tasks] == [0, 1, 2, 3]
            assert all(t.status is TaskStatus.QUEUED for t in tasks)
            assert all(t.attempts == 0 and t.failures == 0 for t in tasks)
            assert {t.updated_at.replace(tzinfo=UTC) for t in tasks} == {NOW}
            # The runnable-chunks query (the dispatcher's) finds them by status and in order.
            runnable = s.scalars(
                select(Task.index).where(Task.job_id == job_id, Task.status == TaskStatus.QUEUED).order_by(Task.index)
            )
            assert list(runnable) == [0, 1, 2, 3]
    finally:
        db.dispose()
