"""Benchmark: retention (``farm admin gc``) after years of history stays as cheap as on an empty farm (issue 15).

In one run, on SQLite:

1. **empty farm**: a migrated database with the companies (half of them with a one-year retention) and no job;
   the median time to find the expired jobs (``farm.services.gc.expired``);
2. **seeded farm**: N frame rows (default 1,000,000: 1,000 jobs of 1,000 frames, chunks of 10, one attempt per
   chunk) from jobs that finished over the last three years. First the backlog is expired once (``collect`` with
   ``apply``: rows, then the files of a local store), which is timed for reference; then the steady state: the
   median time to find expired jobs when none is due (ratio to the empty farm's, in the same run), and one day's
   expiry (what a daily ``farm admin gc --apply`` does), which must stay within ``--budget-ms``.

Usage: ``python bench/retention.py [--frames 1000000] [--runs 7] [--budget-ms 1000]``.
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
HISTORY_DAYS = 3 * 365
RETENTION_DAYS = 365.0


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    """Median wall seconds of ``runs`` calls (after one warm-up call) and the last result."""
    result = fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def make_db(folder: Path, now: datetime) -> Any:
    from farm.db.engine import Database
    from farm.db.models import Company

    db = Database(f"sqlite:///{folder / 'farm.db'}")
    db.migrate()
    with db.session() as s:
        for c in range(COMPANIES):
            retention = RETENTION_DAYS if c % 2 == 0 else None
            s.add(Company(id=f"c-{c:02d}", name=f"studio-{c:02d}", created_at=now, retention_days=retention))
    return db


def seed(db: Any, frames: int, now: datetime) -> int:
    """Finished jobs spread over the history, their chunks, one attempt per chunk and their frames."""
    from sqlalchemy import insert, text

    from farm.db.models import Job, Task
    from farm.domain.states import JobStatus, TaskStatus

    jobs = max(1, frames // FRAMES_PER_JOB)
    chunks = FRAMES_PER_JOB // CHUNK
    with db.session() as s:
        job_rows = []
        for j in range(jobs):
            ended = now - timedelta(days=HISTORY_DAYS * (j + 0.5) / jobs)
            job_rows.append(
                {
                    "id": f"job-{j:06d}",
                    "company_id": f"c-{j % COMPANIES:02d}",
                    "name": f"shot {j}",
                    "status": JobStatus.COMPLETED,
                    "status_reason": "",
                    "priority": 50,
                    "frames": f"1-{FRAMES_PER_JOB}",
                    "chunk_size": CHUNK,
                    "blend_file": "scene.blend",
                    "manifest": {},
                    "settings": {},
                    "frames_total": FRAMES_PER_JOB,
                    "created_at": ended - timedelta(hours=2),
                    "started_at": ended - timedelta(hours=1),
                    "finished_at": ended,
                }
            )
        s.execute(insert(Job), job_rows)
        s.execute(
            insert(Task),
            [
                {
                    "id": f"{row['id']}-t{t}",
                    "job_id": row["id"],
                    "index": t,
                    "frames": list(range(t * CHUNK + 1, (t + 1) * CHUNK + 1)),
                    "status": TaskStatus.COMPLETED,
                    "attempts": 1,
                    "updated_at": row["finished_at"],
                }
                for row in job_rows
                for t in range(chunks)
            ],
        )
        s.execute(
            text(
                "INSERT INTO task_attempts (task_id, number, node, worker, status, started_at, reason, log_tail, "
                "fault, warning) SELECT id, 1, 'node', 'slot', 'completed', updated_at, '', '', '', '' FROM tasks"
            )
        )
        s.execute(
            text(
                "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < :per) "
                "INSERT INTO frames (job_id, frame, task_id, key, name, size, sha256, device, render_seconds, "
                "created_at) SELECT j.id, n.x, j.id || '-t' || ((n.x - 1) / :chunk), "
                "'outputs/' || j.company_id || '/' || j.id || '/f' || n.x || '.png', 'f' || n.x || '.png', 1000, "
                ":sha, 'CPU', 0.5, j.finished_at FROM jobs j, n"
            ),
            {"per": FRAMES_PER_JOB, "chunk": CHUNK, "sha": "ab" * 32},
        )
        s.execute(text("ANALYZE"))
    return jobs * FRAMES_PER_JOB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--budget-ms", type=float, default=1000.0, help="one day's expiry on the seeded farm")
    args = parser.parse_args()

    from sqlalchemy import func, select

    from farm.db.models import Frame, Job
    from farm.services.gc import collect, expired
    from storage.local import LocalDirStore

    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="bench-retention-") as tmp:
        root = Path(tmp)
        (root / "empty").mkdir()
        (root / "seeded").mkdir()
        empty = make_db(root / "empty", now)

        def find_empty() -> Any:
            with empty.session() as s:
                return expired(s, now)

        empty_s, _ = timed(find_empty, args.runs)
        empty.dispose()

        db = make_db(root / "seeded", now)
        started = time.perf_counter()
        frames = seed(db, args.frames, now)
        seed_s = time.perf_counter() - started
        store = LocalDirStore(root / "objects")
        started = time.perf_counter()
        backlog = collect(db, store, now, 30.0, apply=True)
        backlog_s = time.perf_counter() - started

        def find_seeded() -> Any:
            with db.session() as s:
                return expired(s, now)

        seeded_s, due = timed(find_seeded, args.runs)
        started = time.perf_counter()
        day = collect(db, store, now + timedelta(days=1), 30.0, apply=True)
        day_s = time.perf_counter() - started
        with db.session() as s:
            jobs_left = s.scalar(select(func.count()).select_from(Job))
            frames_left = s.scalar(select(func.count()).select_from(Frame))
        db.dispose()

    ratio = seeded_s / empty_s if empty_s else float("inf")
    print(f"seeded {frames:,} frame rows in {seed_s:.1f}s; expired the backlog of {len(backlog.expired_jobs)} jobs "
          f"in {backlog_s:.2f}s")  # fmt: skip
    print(f"finding expired jobs: empty farm {empty_s * 1000:.2f} ms, seeded farm {seeded_s * 1000:.2f} ms "
          f"(ratio {ratio:.2f}; {len(due)} due)")  # fmt: skip
    print(f"one day's expiry ({len(day.expired_jobs)} jobs) {day_s * 1000:.1f} ms (budget {args.budget_ms:g} ms); "
          f"{jobs_left} jobs and {frames_left:,} frames kept")  # fmt: skip
    expected_kept = sum(
        1 for j in range(max(1, args.frames // FRAMES_PER_JOB)) if (j % COMPANIES) % 2 == 1 or
        HISTORY_DAYS * (j + 0.5) / max(1, args.frames // FRAMES_PER_JOB) < RETENTION_DAYS - 1
    )  # fmt: skip
    ok = day_s * 1000 <= args.budget_ms and due == [] and jobs_left == expected_kept
    if not ok:
        print(f"FAILED: expected {expected_kept} jobs kept and the day's expiry within budget")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
