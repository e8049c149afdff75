"""Node-local content-addressed cache of job inputs, with an LRU size limit that also counts job folders.

The cache only ever holds bytes whose sha256 was checked when they arrived, and nothing a render does can reach
them: job folders are laid out with verified *copies* (``workers.layout``), never hard links, because a hard
link shares the inode and whoever writes one name writes every other (the store's blob, the cache entry, other
jobs' folders). See docs/integrity.md for why this is sound and what it costs.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

from farm.errors import ObjectMissing, StorageError
from storage.base import ObjectStore, blob_key

log = logging.getLogger(__name__)

BLOCK = 1024 * 1024


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def hash_file(path: Path) -> tuple[str, int]:
    """Hex sha256 and size of a file, from one read of it (the size is what was hashed)."""
    digest = hashlib.sha256()
    size = 0
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        while block := os.read(fd, BLOCK):
            digest.update(block)
            size += len(block)
    finally:
        os.close(fd)
    return digest.hexdigest(), size


def copy_verified(src: Path, dest: Path) -> str:
    """Copy ``src`` to ``dest`` (a new inode, written to a temporary name and renamed into place) and return the
    sha256 of the bytes written, hashed in the same pass."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Unique per process and thread, so two writers of one name never share a temporary file.
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}-{threading.get_ident()}")
    digest = hashlib.sha256()
    try:
        with src.open("rb") as source, tmp.open("wb") as out:
            while block := source.read(BLOCK):
                digest.update(block)
                out.write(block)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return digest.hexdigest()


def tree_bytes(root: Path) -> int:
    """Bytes of every regular file under ``root`` (0 when absent)."""
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


class BlobCache:
    """``root/ab/abcdef…`` files named by sha256; concurrent workers on one node share it via file locks.

    ``max_bytes`` bounds the cache *plus* the input folders of the jobs laid out on this node (every folder
    matching ``jobs_root/*/jobs/*/input``): those are copies, so they take disk of their own.
    """

    def __init__(self, root: Path, max_bytes: int, jobs_root: Path | None = None) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.jobs_root = jobs_root
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
            try:
                if local is not None:
                    # A copy, never a link: the cache entry must not share its inode with the stored blob.
                    actual = copy_verified(local, tmp)
                else:
                    store.get_file(key, tmp)
                    actual = sha256_file(tmp)
            except FileNotFoundError as exc:
                raise ObjectMissing(f"object {key} is not in the store") from exc
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise StorageError(f"cannot cache blob {sha256}: {exc}") from exc
            if actual != sha256:
                tmp.unlink(missing_ok=True)
                raise StorageError(f"blob {sha256} arrived with hash {actual}: refusing a corrupted input")
            os.replace(tmp, target)
        if evict:
            self.evict()
        return target

    def drop(self, sha256: str) -> None:
        """Forget a cache entry (its bytes no longer match its name)."""
        with self._lock(sha256[:2]):
            self.path(sha256).unlink(missing_ok=True)
        log.warning("cache: entry %s did not match its hash; dropped, it will be fetched again", sha256)

    def jobs_bytes(self) -> int:
        """Bytes held by the job input folders on this node."""
        if self.jobs_root is None or not self.jobs_root.exists():
            return 0
        return sum(tree_bytes(folder) for folder in self.jobs_root.glob("*/jobs/*/input"))

    def evict(self) -> None:
        """Delete least recently used blobs until cache plus job folders are under the limit.

        A job folder holds its own copy, so evicting a blob that a running chunk uses is harmless.
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
        total = sum(size for _, size, _ in entries) + self.jobs_bytes()
        for _mtime, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
            log.info("cache: evicted %s (%d bytes)", path.name, size)
        if total > self.max_bytes:
            log.warning(
                "cache: %d bytes of job inputs and cache exceed FARM_WORKER_CACHE_BYTES=%d even with the cache "
                "empty; the jobs being rendered need them",
                total,
                self.max_bytes,
            )

    def size(self) -> int:
        """Bytes held by the cache now."""
        return sum(p.stat().st_size for p in self.root.glob("??/*") if not p.name.startswith("."))


def remove_tree(path: Path) -> None:
    """Remove a folder and everything in it; absent is fine."""
    shutil.rmtree(path, ignore_errors=True)


def empty_folder(path: str | Path) -> None:
    """Make ``path`` an empty folder, keeping it and the folders inside it: a chunk's output folder, which the job's
    next chunk on this slot reuses. Making and removing a folder per chunk is what cost most on ext4, whose inode
    allocator slows down with every inode freed recently (``recently_deleted`` in a profile of the kernel); a frame
    moved into the store frees none. Files and links inside are removed, never followed; a file or a link in the
    folder's place is replaced by a folder."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        os.makedirs(path, exist_ok=True)
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        os.makedirs(path, exist_ok=True)
        return
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                empty_folder(entry.path)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
