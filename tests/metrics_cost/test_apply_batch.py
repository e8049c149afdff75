"""Applying many finished one-frame chunks in one pass (issue 12, throughput): the frame rows and the ledger rows of a
pass go to the database in one statement per table, the running totals change once, and what the rows say is what
the worker's facts said, byte for byte. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from farm.db.engine import Database
from farm.db.models import Frame, Job, Task, TaskAttempt, UsageEntry, Webhook, WebhookDelivery
from farm.domain.attempts import AttemptFacts, Outcome, StoredFrame
from farm.domain.states import JobStatus, TaskStatus
from farm.lifecycle import attempts, tallies
from farm.lifecycle.transitions import set_job_status, set_task_status
from tests import factories

pytest_plugins = ["tests.db.backends"]  # db_url: SQLite and PostgreSQL

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
K = 12


@pytest.fixture()
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    database.migrate()
    yield database
    database.dispose()


def dispatch(db: Database, job_id: str, task_ids: list[str], now: datetime) -> None:
    """Hand the chunks out as ``Dispatcher._assign`` does: dispatched, one more attempt, its row."""
    with db.session() as s:
        job = s.get(Job, job_id)
        assert job is not None
        if job.status == JobStatus.QUEUED:
            set_job_status(job, JobStatus.ACTIVE, now)
        for task_id in task_ids:
            task = s.get(Task, task_id)
            assert task is not None
            set_task_status(task, TaskStatus.DISPATCHED, now, "to slot", job)
            task.attempts += 1
            s.add(
                TaskAttempt(
                    task_id=task.id,
                    number=task.attempts,
                    node="node-a",
                    worker="slot",
                    started_at=now,
                    status="dispatched",
                )
            )


def stored(task_id: str, frame: int, attempt: int = 1) -> StoredFrame:
    return StoredFrame(
        task_id=task_id,
        attempt=attempt,
        frame=frame,
        key=f"outputs/x/frame_{frame:04d}.png",
        name=f"frame_{frame:04d}.png",
        size=100 + frame,
        sha256=f"{frame:02x}" * 32,
        device="CPU",
        seconds=0.2 * frame,
    )


def facts(task_id: str, frame: int, attempt: int = 1, frames: tuple[StoredFrame, ...] | None = None) -> AttemptFacts:
    start = NOW.timestamp() + 5
    return AttemptFacts(
        task_id=task_id,
        attempt=attempt,
        node="node-a",
        worker="slot",
        resources={"cpu": 2.0},
        outcome=Outcome.COMPLETED,
        started_at=start,
        ended_at=start + 3,
        seconds=3.0,
        exit_code=0,
        log_tail="ok",
        frames=(stored(task_id, frame, attempt),) if frames is None else frames,
    )


def make_job(db: Database, frames: int, hook_events: list[str] | None = None) -> tuple[str, str, list[str]]:
    with db.session() as s:
        job = factories.job(s, "acme", frames=f"1-{frames}", chunk_size=1, now=NOW)
        if hook_events:
            s.add(
                Webhook(
                    id="wh-1",
                    company_id=job.company_id,
                    url="http://127.0.0.1:9/",
                    secret="s",
                    events=hook_events,
                    created_at=NOW,
                )
            )
        return job.id, job.company_id, [f"{job.id}-t{i}" for i in range(frames)]


def apply(db: Database, reports: list[AttemptFacts], now: datetime) -> list[Job]:
    """One pass, as ``Dispatcher._apply_all``: preload, then each report."""
    completed = []
    with db.session() as s:
        attempts.preload(s, [f.task_id for f in reports])
        for one in reports:
            job = attempts.attempt_ended(s, one, now, attempts.Policy(), attempts.StoreWaits(), 0.0)
            if job is not None:
                completed.append(job)
    return completed


class Statements:
    """The statements an engine sends, with how many parameter sets each carried."""

    def __init__(self, db: Database) -> None:
        self.seen: list[tuple[str, int]] = []
        self.engine = db.engine

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._note)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._note)

    def _note(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool) -> None:
        self.seen.append((" ".join(statement.split()).lower(), len(parameters) if many else 1))

    def starting(self, prefix: str) -> list[tuple[str, int]]:
        return [(sql, n) for sql, n in self.seen if sql.startswith(prefix)]


def test_a_pass_of_many_chunks_writes_each_table_in_one_statement_and_the_rows_say_what_the_facts_said(db):
    job_id, company_id, ids = make_job(db, K, hook_events=["started", "first_frame", "completed"])
    dispatch(db, job_id, ids, NOW)
    when = NOW + timedelta(seconds=10)
    with Statements(db) as sent:
        completed = apply(db, [facts(task_id, i + 1) for i, task_id in enumerate(ids)], when)
    assert [job.id for job in completed] == [job_id]
    # Not one INSERT per chunk: one statement for the frames and one for the ledger, whatever K is.
    frame_inserts = sent.starting("insert into frames")
    ledger_inserts = sent.starting("insert into usage_ledger")
    assert len(frame_inserts) == 1 and frame_inserts[0][1] in (1, K), frame_inserts  # executemany, or one VALUES list
    assert len(ledger_inserts) == 1, ledger_inserts
    assert len(sent.starting("update metric_totals")) + len(sent.starting("insert into metric_totals")) <= 3
    assert not [sql for sql, _ in sent.seen if sql.startswith("select") and "from frames" in sql][1:]
    with db.session() as s:
        job = s.get(Job, job_id)
        assert job is not None and job.status == JobStatus.COMPLETED
        assert (job.frames_done, job.tasks_completed, job.tasks_in_flight) == (K, K, 0)
        assert job.frames_bytes == sum(100 + f for f in range(1, K + 1))
        assert job.last_frame_at is not None
        rows = {r.frame: r for r in s.scalars(select(Frame).where(Frame.job_id == job_id))}
        assert sorted(rows) == list(range(1, K + 1))
        for i, task_id in enumerate(ids):
            frame, row = i + 1, rows[i + 1]
            assert (row.task_id, row.key, row.name, row.size) == (
                task_id,
                f"outputs/x/frame_{frame:04d}.png",
                f"frame_{frame:04d}.png",
                100 + frame,
            )
            assert row.sha256 == f"{frame:02x}" * 32 and row.device == "CPU" and row.layers is None
            assert row.render_seconds == pytest.approx(0.2 * frame)
        ended = list(s.scalars(select(TaskAttempt).where(TaskAttempt.task_id.in_(ids))))
        assert {a.status for a in ended} == {"completed"} and all(a.seconds == 3.0 for a in ended)
        ledger = list(s.scalars(select(UsageEntry).where(UsageEntry.job_id == job_id).order_by(UsageEntry.id)))
        assert [(u.task_id, u.attempt, u.resource, u.count, u.seconds, u.outcome) for u in ledger] == [
            (task_id, 1, "cpu", 2.0, 3.0, "completed") for task_id in ids
        ]
        assert ledger[0].company_id == company_id and ledger[0].node == "node-a"
        events = sorted(d.event for d in s.scalars(select(WebhookDelivery).where(WebhookDelivery.job_id == job_id)))
        assert events == ["completed", "first_frame", "started"]
        assert [t.count for t in tallies.read(s, tallies.FRAMES_RENDERED)] == [K]
        seconds = tallies.read(s, tallies.FRAME_RENDER_SECONDS)
        assert [(t.label, t.count) for t in seconds] == [("cpu", K)]
        assert seconds[0].total == pytest.approx(sum(0.2 * f for f in range(1, K + 1)))
        assert seconds[0].buckets[tallies.FRAME_SECONDS_BUCKETS.index(1.0)] == 5  # 0.2 .. 1.0
        assert [(t.label, t.total) for t in tallies.read(s, tallies.RESOURCE_SECONDS)] == [("cpu", 2.0 * 3.0 * K)]


def test_rows_not_yet_sent_are_seen_by_reads_in_the_pass_and_dropped_by_a_rollback(db):
    job_id, company_id, ids = make_job(db, 2)
    dispatch(db, job_id, ids, NOW)
    with pytest.raises(RuntimeError, match="the pass failed"), db.session() as s:
        attempts.preload(s, ids)
        attempts.attempt_ended(s, facts(ids[0], 1), NOW, attempts.Policy(), attempts.StoreWaits(), 0.0)
        # A query later in the same transaction (fair share, dependencies, budgets) sees the new rows.
        assert s.scalar(select(Frame.sha256).where(Frame.job_id == job_id, Frame.frame == 1)) == "01" * 32
        assert s.scalar(select(UsageEntry.seconds).where(UsageEntry.task_id == ids[0])) == 3.0
        assert [t.count for t in tallies.read(s, tallies.FRAMES_RENDERED)] == [1]
        raise RuntimeError("the pass failed")
    with db.session() as s:
        assert s.scalar(select(Frame).where(Frame.job_id == job_id)) is None
        assert s.scalar(select(UsageEntry).where(UsageEntry.job_id == job_id)) is None
        assert tallies.read(s, tallies.FRAMES_RENDERED) == []
    # The same facts applied again (the dispatcher's one-by-one retry) are recorded once.
    apply(db, [facts(ids[0], 1)], NOW)
    with db.session() as s:
        assert [r.frame for r in s.scalars(select(Frame).where(Frame.job_id == job_id))] == [1]


def test_a_frame_recorded_twice_in_one_pass_is_one_row_with_the_last_bytes(db):
    job_id, _company, ids = make_job(db, 2)
    dispatch(db, job_id, ids, NOW)
    again = StoredFrame(
        task_id=ids[0],
        attempt=1,
        frame=1,
        key="outputs/x/again.png",
        name="again.png",
        size=7,
        sha256="ff" * 32,
        device="GPU",
        seconds=0.5,
    )
    with db.session() as s:
        attempts.preload(s, ids)
        task = s.get(Task, ids[0])
        assert task is not None
        # A poll's frame, then the attempt's facts with the frame stored again (other bytes) in the same pass.
        assert attempts.record_frames(s, task, 1, [stored(ids[0], 1)], NOW) == 1
        ended = facts(ids[0], 1, frames=(again,))
        attempts.attempt_ended(s, ended, NOW, attempts.Policy(), attempts.StoreWaits(), 0.0)
    with db.session() as s:
        rows = list(s.scalars(select(Frame).where(Frame.job_id == job_id)))
        assert [(r.frame, r.key, r.size, r.sha256, r.device) for r in rows] == [
            (1, "outputs/x/again.png", 7, "ff" * 32, "GPU")
        ]
        job = s.get(Job, job_id)
        assert job is not None and (job.frames_done, job.frames_bytes, job.tasks_completed) == (1, 7, 1)
        assert [t.count for t in tallies.read(s, tallies.FRAMES_RENDERED)] == [1]  # a frame counts once
        assert [t.count for t in tallies.read(s, tallies.FRAME_RENDER_SECONDS)] == [1, 1]  # cpu and gpu


def test_a_completed_attempt_whose_frame_another_chunk_of_the_pass_wrote_fails_its_check(db):
    job_id, _company, ids = make_job(db, 2)
    dispatch(db, job_id, ids, NOW)
    # The second chunk's worker reports frame 1 (the first chunk's) and says it completed: refused, and the
    # chunk's own frame 2 is missing, so the attempt failed (the node's fault), even though frame 1 is new.
    wrong = facts(ids[1], 2, frames=(stored(ids[1], 1),))
    apply(db, [facts(ids[0], 1), wrong], NOW)
    with db.session() as s:
        attempt = s.scalar(select(TaskAttempt).where(TaskAttempt.task_id == ids[1]))
        assert attempt is not None and attempt.status == "failed" and attempt.reason_code == "frames_missing"
        task = s.get(Task, ids[1])
        assert task is not None and task.status == TaskStatus.SOFT_FAILED
        assert [r.task_id for r in s.scalars(select(Frame).where(Frame.job_id == job_id))] == [ids[0]]


def test_observations_of_a_rolled_back_transaction_are_not_added_by_the_next_one(db):
    _job_id, company_id, _ids = make_job(db, 1)
    with Session(db.engine) as s:  # one session, two transactions: the first rolls back
        with s.begin():
            tallies.observe(s, tallies.FRAMES_RENDERED, company_id, [1.0, 1.0])
            s.rollback()
        with s.begin():
            tallies.observe(s, tallies.FRAMES_RENDERED, company_id, [1.0])
    with db.session() as s:
        assert [t.count for t in tallies.read(s, tallies.FRAMES_RENDERED)] == [1]
