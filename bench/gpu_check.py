"""GPU smoke check for a render node: render one frame with Cycles on the best GPU backend and report it.

Usage (on a node with a GPU, with the farm's venv)::

    python bench/gpu_check.py [--resolution 320x240] [--samples 16] [--blend FILE] [--frame 1]
                              [--out DIR] [--repeat 2] [--allow-cpu-fallback]

Without ``--blend`` the farm's sample scene is generated first. The render runs in a bpy subprocess that picks
its device with ``workers.devices.select_device(want_gpu=True, allow_cpu_fallback=False)``, so a node whose
Cycles finds no GPU fails with exit status 3 and the reason. On success one JSON object is printed: device
kind and names, seconds per render and the output path. The first render of a process includes loading (on
H100/H200, compiling from PTX) the GPU kernels; ``--repeat`` renders again in the same process to show the
warm time next to it.
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

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    # Run as a plain script, bench/ is on sys.path but the repository root is not.
    sys.path.insert(0, str(REPO))

from farm.sample import generate_sample  # noqa: E402

EXIT_NO_GPU = 3

RENDER_SCRIPT = """
import json, sys, time
import bpy
from workers.devices import NoGpuAvailable, apply_to_scene, cycles_preferences, select_device

args = json.loads(sys.argv[1])
bpy.ops.wm.open_mainfile(filepath=args["blend"])
scene = bpy.context.scene
try:
    choice = select_device(cycles_preferences(), want_gpu=True, allow_cpu_fallback=args["allow_cpu_fallback"])
except NoGpuAvailable as exc:
    print("NO_GPU=" + json.dumps(str(exc)), flush=True)
    sys.exit(3)
scene.render.engine = "CYCLES"
apply_to_scene(scene, choice)
scene.render.resolution_x, scene.render.resolution_y = args["resolution"]
scene.render.resolution_percentage = 100
scene.cycles.samples = args["samples"]
scene.cycles.use_denoising = False
scene.render.image_settings.file_format = "PNG"
scene.frame_set(args["frame"])
seconds = []
for _ in range(args["repeat"]):
    # render(write_still=True) does not expand '#': the output path is the file itself.
    scene.render.filepath = args["output"]
    start = time.perf_counter()
    bpy.ops.render.render(write_still=True)
    seconds.append(round(time.perf_counter() - start, 4))
print("RESULT=" + json.dumps({**choice.as_dict(), "render_seconds": seconds}), flush=True)
"""


def parse_resolution(text: str) -> tuple[int, int]:
    """Parse ``WxH`` into two positive ints."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"resolution must look like 320x240, got {text!r}") from exc
    if width <= 0 or height <= 0:
        raise argparse.ArgumentTypeError(f"resolution must be positive, got {text!r}")
    return width, height


def _marked(stdout: str, prefix: str) -> str | None:
    lines = [line for line in stdout.splitlines() if line.startswith(prefix)]
    return lines[-1].removeprefix(prefix) if lines else None


def main(argv: list[str] | None = None) -> int:
    """Run the check; return the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=parse_resolution, default=(320, 240), help="WxH (320x240)")
    parser.add_argument("--samples", type=int, default=16, help="Cycles samples, default 16")
    parser.add_argument("--blend", type=Path, help="render this .blend instead of the generated sample")
    parser.add_argument("--frame", type=int, default=1, help="frame to render, default 1")
    parser.add_argument("--out", type=Path, help="folder for the sample and the frame (default: a temp dir)")
    parser.add_argument("--repeat", type=int, default=2, help="renders in the same process, default 2")
    parser.add_argument("--python", default=sys.executable, help="interpreter with bpy (default: this one)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait (kernel builds)")
    parser.add_argument(
        "--allow-cpu-fallback", action="store_true", help="render on the CPU if no GPU is found (smoke test)"
    )
    args = parser.parse_args(argv)

    out = (args.out or Path(tempfile.mkdtemp(prefix="farm-gpu-check-"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.blend:
        blend = args.blend.resolve()
    else:
        blend = generate_sample(out / "sample", args.resolution, args.samples)
    output = out / f"gpu_check_{args.frame:04d}.png"
    job = {
        "blend": str(blend),
        "output": str(output),
        "resolution": list(args.resolution),
        "samples": args.samples,
        "frame": args.frame,
        "repeat": max(1, args.repeat),
        "allow_cpu_fallback": args.allow_cpu_fallback,
    }
    # The bpy child imports workers.devices from this checkout, installed or not.
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            [args.python, "-c", RENDER_SCRIPT, json.dumps(job)],
            capture_output=True,
            text=True,
            errors="replace",
            env=env,
            timeout=args.timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        print(f"gpu_check: render did not finish within {args.timeout:.0f} s", file=sys.stderr)
        return 1
    no_gpu = _marked(proc.stdout, "NO_GPU=")
    if no_gpu is not None:
        print(f"gpu_check: {json.loads(no_gpu)}", file=sys.stderr)
        return EXIT_NO_GPU
    result = _marked(proc.stdout, "RESULT=")
    if proc.returncode != 0 or result is None or not output.is_file():
        tail = (proc.stderr.strip() or proc.stdout.strip())[-4000:]
        print(f"gpu_check: render failed (exit {proc.returncode}):\n{tail}", file=sys.stderr)
        return 1
    report = {
        **json.loads(result),
        "process_seconds": round(time.perf_counter() - started, 3),
        "resolution": f"{args.resolution[0]}x{args.resolution[1]}",
        "samples": args.samples,
        "blend": str(blend),
        "output": str(output),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
