"""The worker's node-local blob cache: LRU eviction and one job laid out by two threads at once."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

from storage.base import blob_key
from storage.local import LocalDirStore
from workers.cache import BlobCache


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
    cache = BlobCache(tmp_path / "cache", max_bytes=1500)
    manifest = {f"tex/{n}.png": {"sha256": put_blob(store, "co", bytes([n]) * 1000), "size": 1000} for n in (1, 2)}
    job = cache.materialize(store, "co", manifest, tmp_path / "job")
    assert cache.size() <= 1500  # evicted after the layout...
    for rel in manifest:
        assert (job / rel).read_bytes()[:1] in (b"\x01", b"\x02")  # ...but the job folder keeps its links


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
            cache.materialize(store, "co", manifest, tmp_path / "job")
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=lay_out) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(store.downloads) == sorted({blob_key("co", e["sha256"]) for e in manifest.values()})
    for rel, entry in manifest.items():
        path = tmp_path / "job" / rel
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
        assert path.stat().st_ino == cache.path(str(entry["sha256"])).stat().st_ino  # a hard link, not a copy
    assert not [p for p in (tmp_path / "job").rglob(".*")]  # no temporary files left behind
