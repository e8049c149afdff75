"""What applying a finished one-frame chunk costs the scheduler's process, per chunk (issue 12, item 4).

A dispatch pass that applies many reports of one job does, per pass, what ``Dispatcher._apply_all`` does:
``attempts.preload`` of the chunks, then ``attempts.attempt_ended`` for each report (its frame row, its attempt row,
its ledger row, the verdict, the job's counters and running totals), then the commit. Here on a migrated SQLite
database, a job of one-frame chunks, ``--chunks`` reports per pass (dispatched first the way ``Dispatcher._assign``
does, in a transaction of their own that is not measured), ``--passes`` passes; it prints the CPU milliseconds per
chunk of the measured part (median and mean of the passes) and, with ``--profile``, a cProfile top list.

``--compare REF`` runs the same measurement on the ``farm`` package of the git revision ``REF`` as well (extracted
read-only with ``git archive`` into a temporary folder and imported from there in a child process), alternating
runs of the two, and prints the ratio: the baseline measured in the same run.

    python bench/apply_cost.py --chunks 48 --passes 20 [--profile] [--compare HEAD]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def measure(chunks: int, passes: int, profile: bool, workdir: Path) -> dict[str, Any]:
    """Per-pass CPU seconds of applying ``chunks`` reports, for ``passes`` passes (plus one warm-up pass)."""
    from sqlalchemy import update

    from farm.db.engine import Database
    from farm.db.models import Company, Job, Task, TaskAttempt, Webhook
    from farm.domain.attempts import AttemptFacts, Outcome, StoredFrame
    from farm.domain.states import JobStatus, TaskStatus
    from farm.lifecycle import attempts
    from farm.lifecycle.transitions import recount, set_job_status, set_task_status

    db = Database(f"sqlite:///{workdir / 'apply.db'}")
    db.migrate()
    start = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    total = chunks * (passes + 1)
    with db.session() as s:
        s.add(Company(id="co-bench", name="bench", created_at=start))
        events = ["started", "first_frame", "completed"]  # the events a pass of finished chunks may queue
        s.add(
            Webhook(
                id="wh-bench",
                company_id="co-bench",
                url="http://127.0.0.1:9/",
                secret="s",
                events=events,
                created_at=start,
            )
        )
        job = Job(
            id="job-bench",
            company_id="co-bench",
            name="shot",
            status=JobStatus.QUEUED,
            status_reason="",
            priority=50,
            frames=f"1-{total}",
            chunk_size=1,
            blend_file="scene.blend",
            manifest={},
            settings={},
            frames_total=total,
            created_at=start,
        )
        s.add(job)
        s.flush()
        for index in range(total):
            s.add(
                Task(
                    id=f"job-bench-t{index}",
                    job_id=job.id,
                    index=index,
                    frames=[index + 1],
                    status=TaskStatus.QUEUED,
                    attempts=0,
                    updated_at=start,
                )
            )
        s.flush()
        recount(s, job)
    policy, waits = attempts.Policy(), attempts.StoreWaits()
    profiler = cProfile.Profile() if profile else None
    seconds: list[float] = []
    for number in range(passes + 1):
        now = start + timedelta(seconds=10 * number + 1)
        ids = [f"job-bench-t{index}" for index in range(number * chunks, (number + 1) * chunks)]
        with db.session() as s:  # the dispatch of these chunks (Dispatcher._assign), not measured
            running = s.get(Job, "job-bench")
            assert running is not None
            if running.status == JobStatus.QUEUED:
                set_job_status(running, JobStatus.ACTIVE, now)
            for slot, task_id in enumerate(ids):
                task = s.get(Task, task_id)
                assert task is not None
                set_task_status(task, TaskStatus.DISPATCHED, now, f"to slot-{slot % 8}", running)
                task.attempts += 1
                s.add(
                    TaskAttempt(
                        task_id=task.id,
                        number=task.attempts,
                        node="node-1",
                        worker=f"slot-{slot % 8}",
                        status="dispatched",
                        started_at=now,
                    )
                )
        began, ended = now.timestamp(), now.timestamp() + 0.5
        reports = []
        for slot, task_id in enumerate(ids):
            frame = int(task_id.rsplit("t", 1)[1]) + 1
            stored = StoredFrame(
                task_id=task_id,
                attempt=1,
                frame=frame,
                key=f"outputs/job-bench/frame_{frame:06d}.png",
                name=f"frame_{frame:06d}.png",
                size=1000 + frame,
                sha256=f"{frame:064x}",
                device="CPU",
                seconds=0.25,
            )
            reports.append(
                AttemptFacts(
                    task_id=task_id,
                    attempt=1,
                    node="node-1",
                    worker=f"slot-{slot % 8}",
                    resources={"cpu": 2.0},
                    outcome=Outcome.COMPLETED,
                    started_at=began,
                    ended_at=ended,
                    seconds=0.5,
                    exit_code=0,
                    log_tail="Fra:1 rendered\n" * 4,
                    blender_seconds=0.3,
                    frames=(stored,),
                )
            )
        applied_at = now + timedelta(seconds=1)
        if profiler is not None and number:
            profiler.enable()
        cpu = time.process_time()
        with db.session() as s:  # as Dispatcher.step: the write lock, preload, each report, the commit
            s.execute(update(Job).where(Job.id == "").values(status=Job.status))
            attempts.preload(s, ids)
            for facts in reports:
                attempts.attempt_ended(s, facts, applied_at, policy, waits, 0.0)
        cpu = time.process_time() - cpu
        if profiler is not None:
            profiler.disable()
        if number:  # the first pass warms caches (compiled statements, imports)
            seconds.append(cpu)
    with db.session() as s:
        done = s.get(Job, "job-bench")
        assert done is not None
        check = {"frames_done": done.frames_done, "tasks_completed": done.tasks_completed, "bytes": done.frames_bytes}
    db.dispose()
    out: dict[str, Any] = {"seconds": seconds, "check": check, "rows": _digest(workdir / "apply.db")}
    if profiler is not None:
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("cumulative").print_stats(30)
        stats.sort_stats("tottime").print_stats(20)
        out["profile"] = text.getvalue()
    return out


#: What the two trees must write alike, row for row (ledger ids included: rows keep their order).
_COMPARED = ("jobs", "tasks", "task_attempts", "frames", "usage_ledger", "metric_totals", "webhook_deliveries")


def _digest(path: Path) -> str:
    """sha256 of every row of the compared tables, in key order: equal when both trees wrote the same bytes."""
    import hashlib
    import sqlite3

    digest = hashlib.sha256()
    with sqlite3.connect(path) as conn:
        for table in _COMPARED:
            for row in conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2"):  # table names from the list
                digest.update(repr((table, row)).encode())
    return digest.hexdigest()


def _child(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="apply-cost-") as tmp:
        result = measure(args.chunks, args.passes, args.profile, Path(tmp))
    print(json.dumps(result))


def _run(tree: Path | None, args: argparse.Namespace, profile: bool) -> dict[str, Any]:
    """One measurement in a child process; ``tree``: a folder whose ``farm`` package is imported instead."""
    env = dict(os.environ)
    path = [str(ROOT)] if tree is None else [str(tree), str(ROOT)]
    env["PYTHONPATH"] = os.pathsep.join([*path, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--chunks", str(args.chunks)]
    command += ["--passes", str(args.passes)] + (["--profile"] if profile else [])
    done = subprocess.run(command, env=env, cwd=tree or ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"measurement failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _extract(ref: str, into: Path) -> None:
    archive = subprocess.run(["git", "archive", ref, "farm"], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


def _ms_per_chunk(runs: list[dict[str, Any]], chunks: int) -> tuple[float, float]:
    per_pass = [value for run in runs for value in run["seconds"]]
    return statistics.median(per_pass) * 1000 / chunks, statistics.fmean(per_pass) * 1000 / chunks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=48, help="one-frame chunks applied per pass (K)")
    parser.add_argument("--passes", type=int, default=20, help="measured passes per run")
    parser.add_argument("--runs", type=int, default=3, help="runs of each tree (alternating with --compare)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile top list (one extra run)")
    parser.add_argument("--compare", metavar="REF", help="also measure the farm package of this git revision")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    with tempfile.TemporaryDirectory(prefix="apply-cost-base-") as tmp:
        base_tree = None
        if args.compare:
            base_tree = Path(tmp)
            _extract(args.compare, base_tree)
        now: list[dict[str, Any]] = []
        base: list[dict[str, Any]] = []
        for _ in range(args.runs):
            if base_tree is not None:
                base.append(_run(base_tree, args, False))
            now.append(_run(None, args, False))
        if args.profile:
            print(_run(None, args, True)["profile"])
    median, mean = _ms_per_chunk(now, args.chunks)
    print(f"K={args.chunks} chunks per pass, {args.passes} passes x {args.runs} runs; job check {now[-1]['check']}")
    print(f"this tree:  {median:.3f} ms CPU per chunk (median of passes), {mean:.3f} mean")
    if base:
        base_median, base_mean = _ms_per_chunk(base, args.chunks)
        print(f"{args.compare}: {base_median:.3f} ms CPU per chunk (median of passes), {base_mean:.3f} mean")
        print(f"ratio this / {args.compare}: {median / base_median:.2f} (median), {mean / base_mean:.2f} (mean)")
        same = base[-1]["rows"] == now[-1]["rows"]
        print(f"rows written ({', '.join(_COMPARED)}): {'the same' if same else 'DIFFERENT'} in both trees")


if __name__ == "__main__":
    main()
