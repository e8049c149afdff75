"""The worker's node-local blob cache and job folders: LRU eviction bounded with the job folders, two slots laying
out one job at once, and isolation: nothing written into a job folder reaches the cache, the store or another job.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

from storage.base import blob_key
from storage.local import LocalDirStore
from workers.cache import BlobCache
from workers.layout import JobFolder


class RemoteLikeStore(LocalDirStore):
    """A local store that behaves like S3 for the cache (no hard links into it) and counts downloads."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.downloads: list[str] = []
        self._count_lock = threading.Lock()

    def local_path(self, key: str) -> Path | None:
        return None

    def get_file(self, key: str, path: Path) -> None:
        with self._count_lock:
            self.downloads.append(key)
        time.sleep(0.01)  # widen the window in which two threads could both fetch
        super().get_file(key, path)


def put_blob(store: LocalDirStore, company: str, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    src = store.root.parent / f"src-{digest}"
    src.write_bytes(data)
    store.put_file(blob_key(company, digest), src)
    return digest


def test_lru_eviction_keeps_the_recently_used(tmp_path: Path) -> None:
    store = RemoteLikeStore(tmp_path / "store")
    cache = BlobCache(tmp_path / "cache", max_bytes=2500)
    a, b, c = (put_blob(store, "co", bytes([n]) * 1000) for n in (1, 2, 3))
    cache.ensure(store, "co", a)
    cache.ensure(store, "co", b)
    old = time.time() - 100
    os.utime(cache.path(a), (old, old))
    os.utime(cache.path(b), (old + 10, old + 10))
    cache.ensure(store, "co", a)  # a used again: now the most recent
    cache.ensure(store, "co", c)  # 3000 bytes > 2500: the least recently used (b) goes
    assert cache.path(a).exists() and cache.path(c).exists()
    assert not cache.path(b).exists()
    assert cache.size() == 2000
    cache.ensure(store, "co", b)  # fetched again on demand
    assert store.downloads.count(blob_key("co", b)) == 2


def test_eviction_never_breaks_a_laid_out_job(tmp_path: Path) -> None:
    store = RemoteLikeStore(tmp_path / "store")
    cache = BlobCache(tmp_path / "cache", max_bytes=1500, jobs_root=tmp_path / "work")
    manifest = {f"tex/{n}.png": {"sha256": put_blob(store, "co", bytes([n]) * 1000), "size": 1000} for n in (1, 2)}
    folder = JobFolder(tmp_path / "work" / "slot" / "jobs" / "job")
    folder.prepare(cache, store, "co", manifest)
    assert cache.size() == 0  # the job folder's 2000 bytes alone exceed the limit: the cache gave way...
    for rel in manifest:
        assert (folder.input / rel).read_bytes()[:1] in (b"\x01", b"\x02")  # ...and the job folder kept its copies


def test_two_threads_lay_out_one_job_and_fetch_each_blob_once(tmp_path: Path) -> None:
    store = RemoteLikeStore(tmp_path / "store")
    cache = BlobCache(tmp_path / "cache", max_bytes=10**9)
    manifest = {
        f"textures/{n:02d}.png": {"sha256": put_blob(store, "co", os.urandom(4096)), "size": 4096} for n in range(24)
    }
    manifest["scene.blend"] = {"sha256": put_blob(store, "co", b"BLENDER" * 50), "size": 350}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def lay_out() -> None:
        try:
            start.wait()
            JobFolder(tmp_path / f"job-{threading.get_ident()}").prepare(cache, store, "co", manifest)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=lay_out) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(store.downloads) == sorted({blob_key("co", e["sha256"]) for e in manifest.values()})
    for job in tmp_path.glob("job-*"):
        for rel, entry in manifest.items():
            path = job / "input" / rel
            assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
            assert path.stat().st_ino != cache.path(str(entry["sha256"])).stat().st_ino  # a copy, never a link
        assert not [p for p in job.rglob(".*")]  # no temporary files left behind


# ---- isolation: a render that writes into its inputs ----------------------------------------------------------
def test_writing_into_a_job_folder_reaches_no_other_copy_and_is_undone(tmp_path: Path) -> None:
    """A compositor File Output node writing ``//textures/checker.png`` writes into the job's own copy; the cache,
    the stored blob (local store: the file the cache was filled from) and another company's job keep their bytes,
    and the audit after the chunk names the change and restores the input before the next chunk."""
    store = LocalDirStore(tmp_path / "store")  # local_path() is offered: the old code hard-linked it
    cache = BlobCache(tmp_path / "cache", max_bytes=10**9, jobs_root=tmp_path / "work")
    texture = b"checker" * 100
    sha = put_blob(store, "company-a", texture)
    put_blob(store, "company-b", texture)
    manifest = {"scene.blend": {"sha256": put_blob(store, "company-a", b"BLENDER-v1"), "size": 10},
                "textures/checker.png": {"sha256": sha, "size": len(texture)}}
    a = JobFolder(tmp_path / "work" / "slot-a" / "jobs" / "job-a")
    b = JobFolder(tmp_path / "work" / "slot-b" / "jobs" / "job-b")
    a.prepare(cache, store, "company-a", manifest)
    b.prepare(cache, store, "company-b", {"textures/checker.png": {"sha256": sha, "size": len(texture)}})

    # What the File Output node does: open the input for writing, in place (same inode), plus a new file.
    with (a.input / "textures" / "checker.png").open("r+b") as f:
        f.write(b"POISON")
    (a.input / "textures" / "aImage.png").write_bytes(b"new file next to the inputs")

    for path in (cache.path(sha), b.input / "textures" / "checker.png", store.root / "blobs" / "company-a" / sha,
                 store.root / "blobs" / "company-b" / sha):
        assert path.read_bytes() == texture, path
    report = a.audit()
    assert report.changed == ["textures/checker.png"] and report.created == ["textures/aImage.png"]
    assert "textures/checker.png" in report.describe() and "aImage.png" in report.describe()
    assert not (a.input / "textures" / "aImage.png").exists()
    a.prepare(cache, store, "company-a", manifest)
    assert (a.input / "textures" / "checker.png").read_bytes() == texture
    assert a.audit().clean


def test_a_replaced_or_deleted_input_is_restored_and_a_tampered_cache_entry_is_never_used(tmp_path: Path) -> None:
    store = RemoteLikeStore(tmp_path / "store")
    cache = BlobCache(tmp_path / "cache", max_bytes=10**9)
    data = os.urandom(5000)
    sha = put_blob(store, "co", data)
    manifest = {"a.bin": {"sha256": sha, "size": 5000}, "b.bin": {"sha256": sha, "size": 5000}}
    folder = JobFolder(tmp_path / "job")
    folder.prepare(cache, store, "co", manifest)
    (folder.input / "a.bin").unlink()
    tmp = folder.input / "x"
    tmp.write_bytes(b"other")
    os.replace(tmp, folder.input / "b.bin")  # replaced by rename: a new inode
    report = folder.audit()
    assert report.changed == ["a.bin", "b.bin"] and report.created == []
    # Something outside the farm changed the cache entry behind its back: the copy's hash catches it.
    cache.path(sha).write_bytes(b"tampered")
    folder.prepare(cache, store, "co", manifest)
    for rel in manifest:
        assert (folder.input / rel).read_bytes() == data
    assert cache.path(sha).read_bytes() == data  # dropped and fetched again
    assert store.downloads.count(blob_key("co", sha)) == 2


def test_the_limit_counts_job_folders_and_removing_a_job_frees_its_disk(tmp_path: Path) -> None:
    store = RemoteLikeStore(tmp_path / "store")
    work = tmp_path / "work"
    cache = BlobCache(tmp_path / "cache", max_bytes=5000, jobs_root=work)
    first = {"f.bin": {"sha256": put_blob(store, "co", os.urandom(3000)), "size": 3000}}
    second = {"g.bin": {"sha256": put_blob(store, "co", os.urandom(1500)), "size": 1500}}
    job1 = JobFolder(work / "slot" / "jobs" / "j1")
    job1.prepare(cache, store, "co", first)
    assert cache.size() + cache.jobs_bytes() == 6000 - 3000  # 3000 cached + 3000 copied > 5000: cache gave way
    job2 = JobFolder(work / "slot" / "jobs" / "j2")
    job2.prepare(cache, store, "co", second)
    assert cache.size() + cache.jobs_bytes() <= 5000
    job1.remove()
    assert cache.jobs_bytes() == 1500 and not job1.root.exists()
