"""Benchmark: the monitor's jobs page for a farm with 1,000 jobs (goal: under 1 s).

Builds a SQLite farm in a temporary folder with ``--jobs`` jobs of ``--frames`` frames each (chunks of 4; a
third completed with every frame stored, a third rendering with half, a third queued), logs in through the page,
and times ``GET /jobs`` (first page, the default), ``GET /jobs?page=10`` and ``GET /jobs?status=active`` over
HTTP in-process. The baseline, measured in the same run, is ``GET /api/v1/jobs?limit=50`` (the JSON API for the
same 50 jobs): the ratio page/API shows what rendering the page adds. Prints the median of ``--repeat`` runs.

Usage: ``python bench/monitor.py [--jobs 1000] [--frames 48] [--repeat 15]``.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from farm.clock import SystemClock  # noqa: E402
from farm.db.engine import Database  # noqa: E402
from farm.db.models import Company, Frame, Job, Task  # noqa: E402
from farm.runtime.api import wire_app  # noqa: E402
from farm.runtime.bootstrap import bootstrap  # noqa: E402
from farm.settings import ServerSettings  # noqa: E402
from storage.local import LocalDirStore  # noqa: E402


def populate(db: Database, jobs: int, frames: int) -> None:
    """Bulk rows (core inserts: building 1,000 jobs through the ORM would dominate the run)."""
    now = datetime.now(UTC)
    with db.session() as s:
        company_id = s.query(Company.id).first()[0]  # type: ignore[index]
        job_rows, task_rows, frame_rows = [], [], []
        for j in range(jobs):
            job_id = f"job-{j:06d}"
            kind = j % 3  # 0 completed, 1 active, 2 queued
            status = ("completed", "active", "queued")[kind]
            created = now - timedelta(minutes=jobs - j)
            job_rows.append(
                dict(
                    id=job_id,
                    company_id=company_id,
                    name=f"shot_{j:04d}",
                    status=status,
                    status_reason="",
                    priority=50,
                    frames=f"1-{frames}",
                    chunk_size=4,
                    blend_file="scene.blend",
                    manifest={},
                    settings={"output_format": "PNG"},
                    frames_total=frames,
                    created_at=created,
                    started_at=created + timedelta(seconds=5) if kind < 2 else None,
                    finished_at=created + timedelta(seconds=60) if kind == 0 else None,
                )
            )
            stored = frames if kind == 0 else frames // 2 if kind == 1 else 0
            for c in range(0, frames, 4):
                done = c + 4 <= stored
                task_rows.append(
                    dict(
                        id=f"task-{j:06d}-{c:04d}",
                        job_id=job_id,
                        index=c // 4,
                        frames=list(range(c + 1, c + 5)),
                        status="completed" if done else "queued",
                        attempts=1 if done else 0,
                        updated_at=now,
                    )
                )
            for f in range(1, stored + 1):
                frame_rows.append(
                    dict(
                        job_id=job_id,
                        frame=f,
                        task_id=f"task-{j:06d}-{(f - 1) // 4 * 4:04d}",
                        key=f"outputs/{company_id}/{job_id}/frame_{f:04d}.png",
                        name=f"frame_{f:04d}.png",
                        size=1000,
                        sha256="0" * 64,
                        device="CPU",
                        render_seconds=0.5,
                        created_at=now,
                    )
                )
        s.execute(insert(Job), job_rows)
        s.execute(insert(Task), task_rows)
        s.execute(insert(Frame), frame_rows)


def timed(http: TestClient, path: str, repeat: int, headers: dict[str, str] | None = None) -> float:
    http.get(path, headers=headers).raise_for_status()  # warm: templates compiled, caches filled
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        http.get(path, headers=headers).raise_for_status()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="farm-bench-monitor-") as tmp:
        data = Path(tmp)
        settings = ServerSettings(data_dir=data, port=0, write_cli_config=False)
        db = Database(settings.db_url)
        db.migrate()
        token = bootstrap(db, SystemClock(), data)
        started = time.perf_counter()
        populate(db, args.jobs, args.frames)
        print(f"populated {args.jobs} jobs x {args.frames} frames in {time.perf_counter() - started:.1f}s")
        app = wire_app(settings, db, LocalDirStore(data / "objects"), SystemClock())
        with TestClient(app, base_url="http://127.0.0.1") as http:
            form = http.get("/login").text
            csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
            http.post("/login", data={"token": token, "csrf": csrf}).raise_for_status()
            page = timed(http, "/jobs", args.repeat)
            deep = timed(http, "/jobs?page=10", args.repeat)
            active = timed(http, "/jobs?status=active", args.repeat)
            api = timed(http, "/api/v1/jobs?limit=50", args.repeat, {"Authorization": f"Bearer {token}"})
        db.dispose()
    print(f"jobs page (first 50 of {args.jobs}):   {page * 1000:7.1f} ms  (goal < 1000 ms)")
    print(f"jobs page 10:                     {deep * 1000:7.1f} ms")
    print(f"jobs page, status=active:         {active * 1000:7.1f} ms")
    print(f"baseline GET /api/v1/jobs?limit=50: {api * 1000:7.1f} ms")
    print(f"ratio page / API: {page / api:.2f}")
    print("PASS" if page < 1.0 else "FAIL: the jobs page took 1 s or more")


if __name__ == "__main__":
    main()
