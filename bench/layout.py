"""Benchmark: laying out a job folder of about 1 GB on a worker.

The old layout hard-linked each input from the node cache (free, but a hard link shares the inode: a render that
writes one of its inputs writes the cache, the store's blob and every other job's copy). The farm now copies each
input while hashing it (``workers.layout.JobFolder``), so every job gets its own inodes and the bytes it reads were
checked against the manifest on the way in. This measures, in one run on the same files:

1. baseline: hard links from the cache (what the farm did before)
2. plain copy: ``shutil.copyfile`` (the kernel's copy, no hash): what isolation alone costs
3. farm: ``JobFolder.prepare`` (copy + sha256 in one pass)
4. farm, next chunk: ``prepare`` again on the laid-out folder (a stat per file)
5. audit: ``JobFolder.audit`` after a chunk (a walk and a stat per file)

and prints each time and its ratio to the plain copy. Usage: ``python bench/layout.py [--mb 1024] [--files 64]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from storage.base import blob_key  # noqa: E402
from storage.local import LocalDirStore  # noqa: E402
from workers.cache import BlobCache  # noqa: E402
from workers.layout import JobFolder  # noqa: E402


def drop_page_cache_hint(paths: list[Path]) -> None:
    """Ask the kernel to forget cached pages of these files, so each variant reads from the same state."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=1024, help="project size in MB")
    parser.add_argument("--files", type=int, default=64, help="number of input files")
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant (the best is kept)")
    args = parser.parse_args()
    size = args.mb * 1024 * 1024 // args.files
    with tempfile.TemporaryDirectory(prefix="farm-bench-layout-", dir=os.environ.get("FARM_BENCH_DIR")) as tmp:
        base = Path(tmp)
        store = LocalDirStore(base / "store")
        cache = BlobCache(base / "cache", max_bytes=10 * args.mb * 1024 * 1024, jobs_root=base / "work")
        manifest: dict[str, dict[str, object]] = {}
        print(f"making {args.files} files of {size / 1e6:.1f} MB ...", flush=True)
        for i in range(args.files):
            data = os.urandom(size)
            sha = hashlib.sha256(data).hexdigest()
            src = base / "src.bin"
            src.write_bytes(data)
            store.put_file(blob_key("co", sha), src)
            manifest[f"textures/t{i:03d}.exr"] = {"sha256": sha, "size": size}
            cache.ensure(store, "co", sha, evict=False)
        cached = [cache.path(str(e["sha256"])) for e in manifest.values()]

        def links(dest: Path) -> None:
            for rel, entry in manifest.items():
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(cache.path(str(entry["sha256"])), target)

        def copies(dest: Path) -> None:
            for rel, entry in manifest.items():
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(cache.path(str(entry["sha256"])), target)

        def farm(dest: Path) -> JobFolder:
            folder = JobFolder(dest)
            folder.prepare(cache, store, "co", manifest)
            return folder

        results: dict[str, float] = {}
        for name, run in (("hard links (old)", links), ("plain copy", copies), ("farm: verified copy", farm)):
            best = float("inf")
            for n in range(args.repeat):
                dest = base / "work" / "slot" / "jobs" / f"{name[:4]}-{n}"
                drop_page_cache_hint(cached)
                started = time.perf_counter()
                run(dest)
                best = min(best, time.perf_counter() - started)
                shutil.rmtree(dest)
            results[name] = best
        folder = farm(base / "work" / "slot" / "jobs" / "kept")
        started = time.perf_counter()
        folder.prepare(cache, store, "co", manifest)
        results["farm: next chunk (stat only)"] = time.perf_counter() - started
        started = time.perf_counter()
        report = folder.audit()
        results["audit after a chunk"] = time.perf_counter() - started
        assert report.clean
    copy = results["plain copy"]
    print(f"\nlayout of {args.mb} MB in {args.files} files (best of {args.repeat}); ratio to a plain copy")
    print(f"{'variant':32} {'seconds':>9} {'/ plain copy':>13}")
    for name, seconds in results.items():
        print(f"{name:32} {seconds:9.3f} {seconds / copy:13.3f}")


if __name__ == "__main__":
    main()
