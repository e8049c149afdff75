"""Benchmark: the farm's render path against what an artist or a Ray user would write.

All in one run, on the 48-frame sample scene, at 64x64/4spp and at 320x240/16spp:

1. naive:    one fresh Blender (bpy) process per frame, like a shell loop of ``blender -b scene.blend -f N``
2. bare-ray: a Ray script with one task per frame, bpy imported inside the Ray worker
3. farm:     an embedded farm, warm, from ``submit`` to the last frame stored

Each variant runs in its own process (Ray is one per process). Prints the wall times and the ratios
farm/naive and farm/bare-ray. Usage: ``python bench/render_path.py [--frames 48] [--sizes 64x64:4,320x240:16]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RENDER_ONE = """
import sys, bpy
bpy.ops.wm.open_mainfile(filepath=sys.argv[1], load_ui=False)
scene = bpy.context.scene
scene.frame_set(int(sys.argv[2]))
scene.render.filepath = sys.argv[3]
bpy.ops.render.render(write_still=True)
"""


def naive(blend: Path, frames: int, out: Path) -> float:
    started = time.monotonic()
    for frame in range(1, frames + 1):
        subprocess.run(
            [sys.executable, "-c", RENDER_ONE, str(blend), str(frame), str(out / f"naive_{frame:04d}.png")],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    return time.monotonic() - started


def bare_ray(blend: Path, frames: int, out: Path) -> float:
    os.environ.update({"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"})
    import ray

    ray.init(include_dashboard=False, object_store_memory=100 * 1024**2, log_to_driver=False)

    @ray.remote
    def render(frame: int) -> str:
        import bpy  # type: ignore[import-not-found]

        bpy.ops.wm.open_mainfile(filepath=str(blend), load_ui=False)
        scene = bpy.context.scene
        scene.frame_set(frame)
        path = str(out / f"ray_{frame:04d}.png")
        scene.render.filepath = path
        bpy.ops.render.render(write_still=True)
        return path

    ray.get(render.remote(1))  # warm: workers started and bpy imported, as the farm is warm too
    started = time.monotonic()
    ray.get([render.remote(f) for f in range(1, frames + 1)])
    took = time.monotonic() - started
    ray.shutdown()
    return took


def farm(blend: Path, frames: int, out: Path) -> float:
    from farm.client import FarmClient
    from farm.domain.states import JOB_TERMINAL
    from farm.runtime.embedded import EmbeddedFarm
    from farm.settings import ServerSettings

    settings = ServerSettings(data_dir=out / "farm-data", port=0, write_cli_config=False)
    with EmbeddedFarm(settings) as embedded, FarmClient(embedded.url, embedded.admin_token) as client:
        warm = client.submit(blend, "1-2", name="warm-up", chunk_size=2).job
        while client.job(warm.id).status not in JOB_TERMINAL:
            time.sleep(0.05)
        started = time.time()
        job = client.submit(blend, f"1-{frames}", name="bench", chunk_size=8).job
        while True:
            job = client.job(job.id)
            if job.status in JOB_TERMINAL:
                break
            # An artist's client polls a few times a second; polling harder would steal the cores Blender uses.
            time.sleep(0.1)
        # The server marks the job finished when its last frame is stored: no polling delay in the figure.
        assert job.finished_at is not None
        took = job.finished_at.timestamp() - started
        if job.status.value != "completed" or job.frames_done != frames:
            raise SystemExit(f"farm job ended {job.status.value} with {job.frames_done}/{frames} frames")
    return took


VARIANTS = {"naive": naive, "bare-ray": bare_ray, "farm": farm}


def run_variant(name: str, blend: Path, frames: int) -> float:
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        result = subprocess.run(
            [sys.executable, __file__, "--variant", name, "--blend", str(blend), "--frames", str(frames), "--out", tmp],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        if result.returncode != 0:
            raise SystemExit(f"variant {name} failed ({result.returncode}):\n{result.stderr[-3000:]}")
        return float(json.loads(result.stdout.strip().splitlines()[-1])["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--sizes", default="64x64:4,320x240:16", help="WxH:samples,...")
    parser.add_argument("--variant", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--blend", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        seconds = VARIANTS[args.variant](args.blend, args.frames, args.out)
        print(json.dumps({"seconds": seconds}))
        return

    from farm.sample import generate_sample

    print(f"render path, {args.frames} frames of the sample scene, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="bench-scenes-") as tmp:
        for size in args.sizes.split(","):
            res, samples = size.split(":")
            width, height = (int(v) for v in res.split("x"))
            folder = Path(tmp) / size.replace(":", "-")
            blend = generate_sample(folder, resolution=(width, height), samples=int(samples))
            times = {name: run_variant(name, blend, args.frames) for name in VARIANTS}
            print(
                f"{res}/{samples}spp: naive {times['naive']:.2f}s  bare-ray {times['bare-ray']:.2f}s  "
                f"farm {times['farm']:.2f}s  |  farm/naive {times['farm'] / times['naive']:.3f}  "
                f"farm/bare-ray {times['farm'] / times['bare-ray']:.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
