"""Benchmark: the cost of a ``/metrics`` scrape does not grow with history (issue 15).

In one run, per database backend (SQLite; PostgreSQL too when its server binaries are installed):

1. **empty farm**: a migrated database with the companies and no job; the median time of a full scrape
   (``web.metrics.render``: per-process series, farm state, heartbeat) over several scrapes;
2. **seeded farm**: the same companies with N frame rows (default 1,000,000: 1,000 jobs of 1,000 frames, chunks
   of 10, one ledger row per chunk, the last jobs still active with chunks queued), the running totals built
   once (``farm.lifecycle.tallies.rebuild``), then the maintenance a live database gets on its own (``ANALYZE``;
   SQLite's checkpoint); the median scrape again, and its ratio to the empty farm's.
3. for reference, what one of the old scrape's aggregations costs on the same rows (frames counted per company
   through the jobs), which the scrape no longer runs.

The scrape must stay within ``--budget-ms`` (200 ms) and must report exactly the seeded frame count.

Usage: ``python bench/metrics.py [--frames 1000000] [--backend sqlite|postgresql|both] [--scrapes 7]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COMPANIES = 10
FRAMES_PER_JOB = 1000
CHUNK = 10
ACTIVE_JOBS = 10


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    """Median wall seconds of ``runs`` calls (after one warm-up call) and the last result."""
    result = fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def seed_companies(db: Any, now: datetime) -> None:
    from farm.db.models import Company

    with db.session() as s:
        for c in range(COMPANIES):
            s.add(Company(id=f"c-{c:02d}", name=f"studio-{c:02d}", created_at=now))


def seed_history(db: Any, frames: int, now: datetime) -> None:
    """Jobs, chunks, frames and ledger rows, generated inside the database (fast on both backends)."""
    from sqlalchemy import insert, text

    from farm.db.models import Job

    jobs = max(frames // FRAMES_PER_JOB, 1)
    chunks = FRAMES_PER_JOB // CHUNK
    pg = db.engine.dialect.name == "postgresql"
    rows = []
    for j in range(jobs):
        active = j >= jobs - ACTIVE_JOBS
        rows.append(
            {
                "id": f"job-{j:07d}",
                "company_id": f"c-{j % COMPANIES:02d}",
                "name": f"shot {j}",
                "status": "active" if active else "completed",
                "status_reason": "",
                "priority": 50,
                "frames": f"1-{FRAMES_PER_JOB}",
                "chunk_size": CHUNK,
                "blend_file": "scene.blend",
                "manifest": {},
                "settings": {"gpu": j % 3 == 0},
                "frames_total": FRAMES_PER_JOB,
                "created_at": now - timedelta(days=1),
                "started_at": now - timedelta(days=1),
                "finished_at": None if active else now,
                "tasks_total": chunks,
                "tasks_runnable": chunks // 2 if active else 0,
                "tasks_completed": chunks - chunks // 2 if active else chunks,
                "frames_done": FRAMES_PER_JOB,
            }
        )
    with db.session() as s:
        s.execute(insert(Job), rows)
        fmt_job = "'job-' || lpad((i / {per})::text, 7, '0')" if pg else "printf('job-%07d', i / {per})"
        series = "generate_series(0, :n - 1) AS g(i)" if pg else "n"
        prefix = "" if pg else "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :n - 1) "
        job_of_chunk = fmt_job.format(per=chunks)
        company_no = f"(i / {chunks}) % {COMPANIES}"
        company_of_chunk = (
            f"'c-' || lpad(({company_no})::text, 2, '0')" if pg else f"'c-' || printf('%02d', {company_no})"
        )
        runnable = f"(i % {chunks}) >= {chunks} - {chunks} / 2 AND i / {chunks} >= :jobs - {ACTIVE_JOBS}"
        s.execute(
            text(
                f'{prefix}INSERT INTO tasks (id, job_id, "index", frames, status, '
                f"attempts, updated_at, failures) SELECT {job_of_chunk} || '-t' || (i % {chunks}), {job_of_chunk}, "
                f"i % {chunks}, '[]', CASE WHEN {runnable} THEN 'queued' ELSE 'completed' END, 1, :now, 0 "
                f"FROM {series}"
            ),
            {"n": jobs * chunks, "jobs": jobs, "now": now},
        )
        s.execute(
            text(
                f"{prefix}INSERT INTO usage_ledger (company_id, job_id, task_id, attempt, node, resource, count, "
                f"started_at, ended_at, seconds, outcome) SELECT {company_of_chunk}, "
                f"{job_of_chunk}, {job_of_chunk} || '-t' || (i % {chunks}), 1, 'node-1', 'cpu', 4, :start, :now, "
                f"{CHUNK}.0, 'completed' FROM {series}"
            ),
            {"n": jobs * chunks, "now": now, "start": now - timedelta(seconds=CHUNK)},
        )
        job_of_frame = fmt_job.format(per=FRAMES_PER_JOB)
        frame_no = f"(i % {FRAMES_PER_JOB}) + 1"
        s.execute(
            text(
                f"{prefix}INSERT INTO frames (job_id, frame, task_id, key, name, size, sha256, device, "
                f"render_seconds, created_at) SELECT {job_of_frame}, {frame_no}, "
                f"{job_of_frame} || '-t' || ((i % {FRAMES_PER_JOB}) / {CHUNK}), "
                f"'frames/' || {job_of_frame} || '/' || {frame_no}, 'frame.png', 1000, :sha, "
                f"CASE WHEN i % 3 = 0 THEN 'OPTIX' ELSE 'CPU' END, (i % 100) / 10.0, :now FROM {series}"
            ),
            {"n": jobs * FRAMES_PER_JOB, "now": now, "sha": "0" * 64},
        )


def maintain(db: Any) -> None:
    """What a live database gets on its own after a bulk load: planner statistics (PostgreSQL's autovacuum
    analyses a table once enough rows changed) and, for SQLite, the write-ahead log folded back into the file."""
    from sqlalchemy import text

    with db.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        if db.engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE"))
        else:
            conn.execute(text("ANALYZE"))
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))


def scrape(db: Any) -> bytes:
    from farm.clock import SystemClock
    from web import metrics

    return metrics.render(metrics.FarmCollector(db, SystemClock()))


def frames_reported(body: bytes) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(body.decode()):
        if family.name == "farm_frames_rendered":
            total += sum(s.value for s in family.samples if s.name == "farm_frames_rendered_total")
    return total


def old_aggregation(db: Any) -> Any:
    from sqlalchemy import func, select

    from farm.db.models import Frame, Job

    with db.session() as s:
        return s.execute(
            select(Job.company_id, func.count())
            .select_from(Frame)
            .join(Job, Job.id == Frame.job_id)
            .group_by(Job.company_id)
        ).all()


def run_backend(name: str, url_for: Callable[[str], str], frames: int, scrapes: int, budget_ms: float) -> bool:
    from farm.db.engine import Database
    from farm.lifecycle import tallies

    now = datetime.now(UTC)
    empty = Database(url_for("empty"))
    empty.migrate()
    seed_companies(empty, now)
    t_empty, _ = timed(lambda: scrape(empty), scrapes)
    empty.dispose()

    db = Database(url_for("seeded"))
    db.migrate()
    seed_companies(db, now)
    started = time.perf_counter()
    seed_history(db, frames, now)
    t_seed = time.perf_counter() - started
    started = time.perf_counter()
    with db.session() as s:
        tallies.rebuild(s)
    t_rebuild = time.perf_counter() - started
    maintain(db)
    t_full, body = timed(lambda: scrape(db), scrapes)
    t_old, _ = timed(lambda: old_aggregation(db), 1)
    reported = frames_reported(body)
    db.dispose()
    ok = t_full * 1000 <= budget_ms and reported == frames
    print(
        f"{name:10} {frames:>10,} frames | empty scrape {t_empty * 1000:7.1f} ms"
        f" | seeded scrape {t_full * 1000:7.1f} ms | ratio {t_full / t_empty:5.2f}x"
        f" | budget {budget_ms:.0f} ms {'ok' if ok else 'MISSED'}"
    )
    print(
        f"{'':10} seeding {t_seed:6.1f} s, one-time totals rebuild {t_rebuild:6.1f} s; the old per-company frame"
        f" count alone: {t_old * 1000:8.1f} ms; frames reported {reported:,.0f}"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--scrapes", type=int, default=7)
    parser.add_argument("--budget-ms", type=float, default=200.0)
    args = parser.parse_args()
    if args.frames % FRAMES_PER_JOB:
        parser.error(f"--frames must be a multiple of {FRAMES_PER_JOB}")
    ok = True
    with tempfile.TemporaryDirectory(prefix="farm-bench-metrics-") as tmp:
        if args.backend in ("sqlite", "both"):
            ok &= run_backend(
                "sqlite", lambda db: f"sqlite:///{tmp}/{db}.db", args.frames, args.scrapes, args.budget_ms
            )
        if args.backend in ("postgresql", "both"):
            from tests.db.postgres import available, shared_server, stop_shared_server

            if not available():
                print("postgresql: not installed (pg_ctl, initdb); skipped")
            else:
                server = shared_server()
                try:
                    ok &= run_backend(
                        "postgresql", lambda _db: server.create_database(), args.frames, args.scrapes, args.budget_ms
                    )
                finally:
                    stop_shared_server()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
