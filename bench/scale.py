"""Benchmark: the control plane's throughput with a null renderer (issue "ten times the throughput").

One embedded farm with ``FARM_RENDERER=sleep:0`` (tiny PNGs, no Blender) and 8 slots, chunks of one frame, in
one run:

1. **farm vs bare Ray**: frames/s of a job of N frames, against 8 bare Ray actors answering the same number of
   calls, one call in flight per actor (what the farm does per slot), in the same Ray instance; ``--rounds``
   rounds of the two back to back, the median of the rounds' ratios. Goal >= 0.5x.
2. **big job vs small job**: frames/s of a 20,000-frame job against a 1,000-frame job. Goal >= 0.8x: the work per
   completion must not grow with the job.
3. **create a 100,000-frame job**: ``POST /api/v1/jobs`` wall time (chunks of one frame). Goal < 2 s.
4. **submit -> first frame**: p50 over 20 one-frame jobs, from the POST to the frame row. Goal <= 41 ms.

Usage: ``python bench/scale.py [--small 1000] [--big 20000] [--create 100000] [--slots 8] [--rounds 3]
[--bundle-max N]``
(``--bundle-max 1``: every chunk in a call of its own, as before bundles).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import nullfarm  # noqa: E402 (bench/nullfarm.py, beside this script; after the path is set)


def cpu_seconds() -> tuple[float, dict[tuple[int, float], float]]:
    """CPU seconds used so far by this process (the farm: dispatcher, API, Ray driver), and by each of its
    descendants (Ray's own processes and the worker actors) by (pid, start time)."""
    import psutil

    def used(p: psutil.Process) -> float:
        try:
            t = p.cpu_times()
            return float(t.user + t.system)
        except psutil.Error:
            return 0.0

    me = psutil.Process()
    children = {}
    for child in me.children(recursive=True):
        try:
            children[(child.pid, child.create_time())] = used(child)
        except psutil.Error:
            continue
    return used(me), children


def cpu_used(before: tuple[float, dict[tuple[int, float], float]]) -> tuple[float, float]:
    """CPU seconds since ``before``: this process, and its descendants alive now (one that ended meanwhile, such
    as a killed actor, takes its last seconds with it; one that started counts whole)."""
    own, children = cpu_seconds()
    return own - before[0], sum(max(0.0, t - before[1].get(key, 0.0)) for key, t in children.items())


CPU: dict[str, tuple[float, float]] = {}


def bare_ray(calls: int, actors: int) -> float:
    """Calls per second of ``actors`` bare actors, one call in flight per actor."""
    import ray

    @ray.remote(num_cpus=0)
    class Echo:
        def render(self, payload: dict[str, object]) -> dict[str, object]:
            return {"task_id": payload["task_id"], "outcome": "completed", "frames": [payload["frame"]]}

    pool = [Echo.remote() for _ in range(actors)]  # type: ignore[attr-defined]
    ray.get([a.render.remote({"task_id": "warm", "frame": 0}) for a in pool])
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    sent = 0
    pending = {}
    for actor in pool:
        pending[actor.render.remote({"task_id": f"t{sent}", "frame": sent})] = actor
        sent += 1
    done = 0
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            actor = pending.pop(ref)
            ray.get(ref)
            done += 1
            if sent < calls:
                pending[actor.render.remote({"task_id": f"t{sent}", "frame": sent})] = actor
                sent += 1
    seconds = time.perf_counter() - started
    CPU["bare"] = cpu_used(cpu_before)
    for actor in pool:
        ray.kill(actor)
    return calls / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--big", type=int, default=20000)
    parser.add_argument("--create", type=int, default=100000)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--latency-jobs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (bare Ray, the farm's small job)")
    parser.add_argument("--bundle-max", type=int, default=None, help="FARM_BUNDLE_MAX (default: the settings')")
    args = parser.parse_args()

    from farm.client import FarmClient

    with tempfile.TemporaryDirectory(prefix="farm-bench-scale-") as tmp:
        base = Path(tmp)
        extra = {"bundle_max": args.bundle_max} if args.bundle_max is not None else {}
        farm = nullfarm.start(base, slots=args.slots, **extra)
        try:
            with FarmClient(farm.url, farm.admin_token, timeout=600) as client:
                spec = nullfarm.Jobs(client, base).spec

                def run(frames: int, name: str) -> float:
                    job = client.create_job(spec(f"1-{frames}", name))
                    cpu_before = cpu_seconds()
                    started = time.time()
                    while True:
                        current = client.job(job.id)
                        if current.status.value in ("completed", "failed", "canceled"):
                            break
                        time.sleep(0.25)  # a look now and then, as `farm wait` does: the farm's time is its own
                    # Until the job's own end (same machine, same clock), not until this loop's next look at it.
                    assert current.finished_at is not None
                    seconds = current.finished_at.timestamp() - started
                    CPU[name] = cpu_used(cpu_before)
                    assert current.status.value == "completed", current.status_reason
                    assert current.frames_done == frames
                    return frames / seconds

                run(64, "warm-up")
                # Rounds of (bare Ray, the farm's small job), back to back: this machine's speed moves from minute
                # to minute, so each round's ratio compares runs made under the same load.
                smalls, baselines = [], []
                for _ in range(args.rounds):
                    baselines.append(bare_ray(args.small, args.slots))
                    smalls.append(run(args.small, "small"))
                ratio = statistics.median(s / b for s, b in zip(smalls, baselines, strict=True))
                small, baseline = statistics.median(smalls), statistics.median(baselines)
                big = run(args.big, "big")

                started = time.perf_counter()
                created = client.create_job(spec(f"1-{args.create}", "create"))
                create_s = time.perf_counter() - started
                if client.job(created.id).status.value not in ("completed", "failed", "canceled"):
                    client.cancel(created.id)

                latencies = []
                for i in range(args.latency_jobs):
                    started = time.perf_counter()
                    job = client.create_job(spec("1", f"latency-{i}"))
                    while not client.frames(job.id).frames:
                        time.sleep(0.002)
                    latencies.append(time.perf_counter() - started)
        finally:
            farm.stop()
    p50 = statistics.median(latencies) * 1000
    print(f"\nnull renderer, {args.slots} slots, chunks of one frame")
    print(f"{'measure':44} {'value':>12} {'ratio':>8} {'goal':>8}")
    print(f"{'bare Ray actors, calls/s':44} {baseline:12.0f}")
    print(f"{f'farm, {args.small}-frame job, frames/s':44} {small:12.0f} {ratio:8.3f} {'>= 0.5':>8}")
    print(f"{f'farm, {args.big}-frame job, frames/s':44} {big:12.0f} {big / small:8.3f} {'>= 0.8':>8}")
    print(f"{f'create a {args.create}-frame job, s':44} {create_s:12.2f} {'':>8} {'< 2':>8}")
    print(f"{'submit -> first frame p50, ms':44} {p50:12.1f} {'':>8} {'<= 41':>8}")
    rounds = ", ".join(f"{s / b:.3f}" for s, b in zip(smalls, baselines, strict=True))
    print(f"\nsmall job / bare Ray, round by round: {rounds}")
    print("(the ratio above is their median; bench/latency.py measures the latency against the code before issue 12)")
    print(
        "\nCPU per frame (ms): the driver process (farm: dispatcher, API, Ray driver) / its descendants (Ray, workers)"
    )
    for label, key, count in (("bare Ray", "bare", args.small), ("farm", "small", args.small)):
        own, children = CPU[key]
        print(f"{label:44} {own / count * 1000:8.2f} / {children / count * 1000:8.2f}")


if __name__ == "__main__":
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    main()
