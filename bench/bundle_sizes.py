"""Frames/s of short one-frame chunks for several ``FARM_BUNDLE_MAX`` values, in one embedded farm, interleaved.

One embedded farm (null renderer ``sleep:0``, 8 slots) renders ``--frames``-frame jobs of one-frame chunks; before
each job the dispatcher's ``bundle_max`` is switched (``Dispatcher.configure``), the values taking turns for
``--rounds`` rounds, so each value runs under the same load as the others. It prints, per value, the frames/s of
each round, their median, the driver's CPU per frame, and the median ratio to the first value (the baseline).

    python bench/bundle_sizes.py [--frames 2000] [--rounds 3] [--values 16,32,64]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import nullfarm  # noqa: E402 (bench/nullfarm.py, beside this script; after the path is set)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--values", default="16,32,64", help="bundle_max values; the first is the baseline")
    args = parser.parse_args()
    values = [int(v) for v in args.values.split(",")]

    from farm.client import FarmClient

    cpu = time.process_time  # this process's CPU, every thread: dispatcher, API, Ray driver

    rates: dict[int, list[float]] = {v: [] for v in values}
    cpu_ms: dict[int, list[float]] = {v: [] for v in values}
    with tempfile.TemporaryDirectory(prefix="farm-bench-bundles-") as tmp:
        base = Path(tmp)
        farm = nullfarm.start(base)
        try:
            assert farm.dispatcher is not None
            with FarmClient(farm.url, farm.admin_token, timeout=600) as client:
                jobs = nullfarm.Jobs(client, base)

                def run(frames: int, name: str) -> tuple[float, float]:
                    job = client.create_job(jobs.spec(f"1-{frames}", name))
                    started, cpu_before = time.time(), cpu()
                    while True:
                        current = client.job(job.id)
                        if current.status.value in ("completed", "failed", "canceled"):
                            break
                        time.sleep(0.25)
                    assert current.status.value == "completed", current.status_reason
                    assert current.finished_at is not None
                    seconds = current.finished_at.timestamp() - started
                    return frames / seconds, (cpu() - cpu_before) / frames * 1000

                run(64, "warm-up")
                for _ in range(args.rounds):
                    for value in values:
                        farm.dispatcher.configure(bundle_max=value)
                        rate, ms = run(args.frames, f"bundle-max-{value}")
                        rates[value].append(rate)
                        cpu_ms[value].append(ms)
        finally:
            farm.stop()
    baseline = values[0]
    print(f"\n{args.frames}-frame jobs of one-frame chunks, null renderer, 8 slots, {args.rounds} rounds interleaved")
    vs = f"vs {baseline}"
    print(f"{'bundle_max':>10} {'frames/s by round':>28} {'median':>8} {'driver ms/frame':>16} {vs:>8}")
    for value in values:
        ratio = statistics.median(r / b for r, b in zip(rates[value], rates[baseline], strict=True))
        by_round = ", ".join(f"{r:.0f}" for r in rates[value])
        print(
            f"{value:>10} {by_round:>28} {statistics.median(rates[value]):8.0f} "
            f"{statistics.median(cpu_ms[value]):16.2f} {ratio:8.3f}"
        )


if __name__ == "__main__":
    main()
