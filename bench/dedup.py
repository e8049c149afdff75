"""Benchmark: content-addressed dedup on a resubmit.

A generated project of about 200 MB (a .blend built by bpy in a child process, plus random-noise PNG
textures, incompressible so no size is flattered) is submitted three times to a farm API on 127.0.0.1
(local store, no scheduler: only the submit path is measured):

1. first:     everything is traced, hashed and uploaded
2. identical: the same project again (goal: 0 bytes uploaded, under 2 s)
3. changed:   one texture rewritten (goal: only that file uploaded)

Prints bytes uploaded, bytes hashed and wall time of each, and the ratios to the first submit.
Usage: ``python bench/dedup.py [--textures 16] [--size 2048] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def noise_png(path: Path, size: int, seed: int) -> int:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").save(path, compress_level=1)
    return path.stat().st_size


def build_project(base: Path, textures: int, size: int) -> Path:
    (base / "textures").mkdir(parents=True, exist_ok=True)
    total = 0
    for i in range(textures):
        total += noise_png(base / "textures" / f"noise_{i:02d}.png", size, seed=i)
    spec = {"out": str(base / "scene.blend"), "textures": [f"//textures/noise_{i:02d}.png" for i in range(textures)]}
    subprocess.run(
        [sys.executable, str(ROOT / "farm" / "sample" / "make_project.py"), json.dumps(spec)],
        check=True,
        capture_output=True,
    )
    total += (base / "scene.blend").stat().st_size
    print(f"project: {textures} textures of {size}x{size} + scene.blend = {total / 1e6:.1f} MB")
    return base / "scene.blend"


def serve(data_dir: Path) -> tuple[str, str]:
    import uvicorn

    from farm.clock import SystemClock
    from farm.db.engine import Database
    from farm.runtime.api import wire_app
    from farm.runtime.bootstrap import bootstrap
    from farm.runtime.embedded import free_port
    from farm.settings import ServerSettings
    from storage.local import LocalDirStore

    settings = ServerSettings(data_dir=data_dir, port=0, write_cli_config=False)
    db = Database(settings.db_url)
    db.migrate()
    token = bootstrap(db, SystemClock(), data_dir)
    app = wire_app(settings, db, LocalDirStore(data_dir / "objects"), SystemClock())
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}", token


def submit(url: str, token: str, blend: Path) -> dict[str, float]:
    from farm.client import FarmClient
    from farm.client.packing import HashCache

    cache = HashCache()  # loads the cache file each time, like a fresh `farm submit`
    started = time.monotonic()
    with FarmClient(url, token) as client:
        result = client.submit(blend, "1", name="dedup", hash_cache=cache)
    return {
        "seconds": time.monotonic() - started,
        "uploaded_bytes": result.uploaded_bytes,
        "reused_bytes": result.reused_bytes,
        "uploaded_files": result.uploaded_files,
        "hashed_bytes": cache.hashed_bytes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--textures", type=int, default=16)
    parser.add_argument("--size", type=int, default=2048, help="texture side in pixels (2048: ~12.6 MB each)")
    parser.add_argument("--keep", type=Path, default=None, help="work here instead of a temporary folder")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-dedup-"))
    os.environ["XDG_CACHE_HOME"] = str(base / "client-cache")  # a cold hash cache, this run's own
    blend = build_project(base / "project", args.textures, args.size)
    url, token = serve(base / "farm")

    runs = {"first": submit(url, token, blend), "identical": submit(url, token, blend)}
    changed = base / "project" / "textures" / "noise_00.png"
    changed_size = noise_png(changed, args.size, seed=10_000)
    runs["changed"] = submit(url, token, blend)

    first = runs["first"]
    print(f"{'submit':<10} {'uploaded':>14} {'hashed':>14} {'seconds':>8}  {'bytes/first':>11} {'time/first':>10}")
    for name, run in runs.items():
        print(
            f"{name:<10} {int(run['uploaded_bytes']):>14,} {int(run['hashed_bytes']):>14,} {run['seconds']:>8.2f}"
            f"  {run['uploaded_bytes'] / first['uploaded_bytes']:>11.4f} {run['seconds'] / first['seconds']:>10.3f}"
        )
    print(f"changed texture: {changed_size:,} bytes")
    ok = (
        runs["identical"]["uploaded_bytes"] == 0
        and runs["identical"]["seconds"] < 2.0
        and runs["changed"]["uploaded_bytes"] == changed_size
    )
    print("goals (identical: 0 bytes in < 2 s; changed: only that file):", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
