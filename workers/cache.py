"""Node-local content-addressed cache of job inputs, with an LRU size limit, and job folders of hard links."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from farm.errors import StorageError
from storage.base import ObjectStore, blob_key

log = logging.getLogger(__name__)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def link_or_copy(src: Path, dest: Path) -> None:
    """Hard link (free, shares the cached bytes) or copy across filesystems."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Unique per process and thread: two chunks of one job may lay out the same folder at once.
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}-{threading.get_ident()}")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    finally:
        # rename(2) does nothing when both names are links to one file (another thread linked it first).
        tmp.unlink(missing_ok=True)


class BlobCache:
    """``root/ab/abcdef…`` files named by sha256; concurrent workers on one node share it via file locks."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        lock_path = self.root / ".locks" / name
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def ensure(self, store: ObjectStore, company: str, sha256: str, evict: bool = True) -> Path:
        """The cached file for a blob, fetched (and verified) on a miss.

        Blobs are namespaced per company in the store, but the cache is keyed by content alone: equal bytes
        are equal inputs, and only a worker running that company's job ever asks for them.
        """
        target = self.path(sha256)
        try:
            os.utime(target)  # LRU: touched on use
            return target
        except FileNotFoundError:
            pass
        with self._lock(sha256[:2]):
            if target.exists():
                return target
            target.parent.mkdir(parents=True, exist_ok=True)
            key = blob_key(company, sha256)
            tmp = target.with_name(f".{sha256}.part")
            local = store.local_path(key)
            if local is not None:
                link_or_copy(local, tmp)
            else:
                store.get_file(key, tmp)
            actual = sha256_file(tmp)
            if actual != sha256:
                tmp.unlink(missing_ok=True)
                raise StorageError(f"blob {sha256} arrived with hash {actual}: refusing a corrupted input")
            os.replace(tmp, target)
        if evict:
            self.evict()
        return target

    def materialize(
        self, store: ObjectStore, company: str, manifest: Mapping[str, Mapping[str, Any]], job_dir: Path
    ) -> Path:
        """Lay out the job folder so the .blend resolves its relative paths; returns ``job_dir``."""
        job_dir.mkdir(parents=True, exist_ok=True)
        for rel, entry in manifest.items():
            sha = str(entry["sha256"])
            dest = job_dir / rel
            # Each blob is linked as soon as it is cached, and eviction waits for the end: a blob of this
            # job can never be evicted before the job folder holds its own link to it.
            src = self.ensure(store, company, sha, evict=False)
            with contextlib.suppress(FileNotFoundError):
                if dest.stat().st_ino == src.stat().st_ino or sha256_file(dest) == sha:
                    continue
            link_or_copy(src, dest)
        self.evict()
        return job_dir

    def evict(self) -> None:
        """Delete least recently used blobs until the cache is under its limit.

        A job folder keeps its own hard link, so evicting a blob that a running chunk uses is harmless.
        """
        entries: list[tuple[float, int, Path]] = []
        for path in self.root.glob("??/*"):
            if path.name.startswith("."):
                continue  # a download in progress
            try:
                st = path.stat()
            except FileNotFoundError:
                continue  # evicted by another worker meanwhile
            entries.append((st.st_mtime, st.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _mtime, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
            log.info("cache: evicted %s (%d bytes)", path.name, size)

    def size(self) -> int:
        """Bytes held by the cache now."""
        return sum(p.stat().st_size for p in self.root.glob("??/*") if not p.name.startswith("."))
