"""Benchmark: the worker actor's own CPU per one-frame chunk (issue 12, item 4), against an earlier revision.

With the null renderer (``sleep:0``: a tiny PNG per frame, no Blender) the farm's frames/s on a small machine is
bounded by CPU, and part of it is the worker's own Python: laying out the job folder, emptying the chunk's output
folder, storing the frame (hash, copy through a temporary file, rename), the audit of the input folder, the
attempt's facts. This measures exactly that, in-process and without Ray: a ``RenderWorker`` with a local store
renders ``--chunks`` one-frame chunks of one job, and the CPU seconds of the process (``time.process_time``) are
divided by the chunks.

The same measurement runs for the working tree and for ``workers/`` + ``storage/`` of ``--baseline`` (a git
revision, extracted with ``git archive`` to a temporary folder that shadows them; ``farm/`` is the working tree's
in both), each in a fresh process, alternating ``--rounds`` times so that both see the same machine load. Prints
the median CPU ms per chunk of each and their ratio (goal: current / baseline <= 0.5).

Creating files is most of a chunk's CPU, and on ext4 its cost depends on where the folder landed (one run's
temporary folder can make each create cost 3-10x another's): use many rounds, compare medians, and run once more
with ``--dir /dev/shm`` (tmpfs), where file creation is cheap and steady, to see the Python side alone.

Usage: ``python bench/worker_cost.py [--chunks 1000] [--rounds 12] [--baseline HEAD] [--dir DIR] [--profile]``
(``--baseline ''`` measures the working tree only; ``--profile`` prints the working tree's cProfile top 30, by CPU
time).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(chunks: int, profile: bool, where: str | None) -> dict[str, object]:
    """CPU and wall ms per chunk of ``chunks`` one-frame chunks on one worker (run inside the child process)."""
    from farm.domain.attempts import Assignment, Outcome
    from storage.base import blob_key
    from storage.factory import StoreConfig, make_store
    from workers.actor import RenderWorker, WorkerConfig

    with tempfile.TemporaryDirectory(prefix="worker-cost-", dir=where) as tmp_name:
        tmp = Path(tmp_name)
        store_config = StoreConfig(backend="local", root=str(tmp / "store"))
        store = make_store(store_config)
        blend = tmp / "scene.blend"
        blend.write_bytes(b"BLENDER-v500 stand-in " * 64)
        sha = hashlib.sha256(blend.read_bytes()).hexdigest()
        store.put_file(blob_key("c1", sha), blend)
        worker = RenderWorker(
            WorkerConfig(
                name="w0",
                store=store_config,
                cache_dir=str(tmp / "cache"),
                cache_bytes=10**9,
                work_dir=str(tmp / "work"),
                renderer="sleep:0",
            )
        )
        manifest = {"scene.blend": {"sha256": sha, "size": blend.stat().st_size}}

        def chunk(frame: int) -> Assignment:
            return Assignment(
                job_id="j1",
                task_id=f"t{frame}",
                attempt=1,
                company_id="c1",
                blend_file="scene.blend",
                manifest=manifest,
                frames=[frame],
                settings={},
            )

        worker.render(chunk(0))  # the first chunk lays the job folder out: not what is measured
        profiler = None
        if profile:
            import cProfile

            profiler = cProfile.Profile(time.process_time)  # CPU, as measured: not waits for the disk
            profiler.enable()
        cpu, wall = time.process_time(), time.perf_counter()
        for frame in range(1, chunks + 1):
            facts = worker.render(chunk(frame))
            if facts.outcome is not Outcome.COMPLETED or len(facts.frames) != 1:
                raise SystemExit(f"chunk {frame} did not complete: {facts}")
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if profiler is not None:
            import pstats

            profiler.disable()
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(30)
        stored = sum(1 for _ in store.list("outputs/c1/j1/"))
        if stored != chunks + 1:
            raise SystemExit(f"{stored} frames stored, expected {chunks + 1}")
        worker.close()
        import workers

        return {"cpu_ms": cpu / chunks * 1000, "wall_ms": wall / chunks * 1000, "code": str(workers.__file__)}


def baseline_tree(rev: str, into: Path) -> Path:
    """``workers/`` and ``storage/`` of ``rev``, extracted under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "workers", "storage"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def run_child(code: Path | None, chunks: int, profile: bool, where: str | None) -> dict[str, object]:
    """One measurement in a fresh process; ``code`` shadows the working tree's workers/ and storage/."""
    command = [sys.executable, __file__, "--child", "--chunks", str(chunks)]
    if where:
        command += ["--dir", where]
    if code is not None:
        command += ["--code", str(code)]
    if profile:
        command.append("--profile")
    out = subprocess.run(command, check=True, text=True, stdout=subprocess.PIPE)  # stderr: the profile, if any
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--baseline", default="HEAD", help="git revision to compare with ('' for none)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--dir", default=None, help="where the worker's folders and store go (default: the temp dir)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--code", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        sys.path.insert(0, str(ROOT))
        if args.code:
            sys.path.insert(0, args.code)
        print(json.dumps(measure(args.chunks, args.profile, args.dir)))
        return

    if args.profile:
        run_child(None, args.chunks, True, args.dir)
        return
    results: dict[str, list[float]] = {"current": [], "baseline": []}
    with tempfile.TemporaryDirectory(prefix="worker-cost-base-") as base_dir:
        base = baseline_tree(args.baseline, Path(base_dir)) if args.baseline else None
        for round_no in range(args.rounds):
            sides: list[tuple[str, Path | None]] = [("current", None)]
            if base is not None:
                sides.append(("baseline", base))
            if round_no % 2:
                sides.reverse()  # neither side always runs first
            for side, code in sides:
                out = run_child(code, args.chunks, False, args.dir)
                results[side].append(float(str(out["cpu_ms"])))
                print(
                    f"round {round_no + 1} {side:8} cpu {float(str(out['cpu_ms'])):.3f} ms/chunk, "
                    f"wall {float(str(out['wall_ms'])):.3f} ms/chunk ({out['code']})",
                    flush=True,
                )
    current = statistics.median(results["current"])
    print(
        f"load average {os.getloadavg()[0]:.2f}; {args.chunks} one-frame chunks per round, {args.rounds} rounds, "
        f"in {args.dir or tempfile.gettempdir()}"
    )
    print(f"working tree: {current:.3f} ms CPU per chunk (median)")
    if results["baseline"]:
        baseline = statistics.median(results["baseline"])
        # Each round's two runs are back to back: their ratio is the least touched by the machine's drift.
        pairs = statistics.median(c / b for c, b in zip(results["current"], results["baseline"], strict=True))
        print(f"{args.baseline}: {baseline:.3f} ms CPU per chunk (median)")
        print(f"working tree / {args.baseline}: {current / baseline:.2f}x of the medians, {pairs:.2f}x median of the")
        print("rounds' ratios (goal <= 0.5x)")


if __name__ == "__main__":
    main()
