"""Local-directory backend: the embedded default. Objects are plain files under one root."""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import shutil
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from farm.errors import ObjectMissing, StorageError
from storage.base import ObjectInfo, check_key

CHUNK = 1024 * 1024
_NAMES = itertools.count()  # temporary file names of this process (``next`` is atomic under the GIL)


class LocalDirStore:
    """An ``ObjectStore`` over a directory. Writes go to a temporary file renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._root = str(self.root)
        self._tmp_dir = os.path.join(self._root, ".tmp")
        os.makedirs(self._tmp_dir, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _commit(self, key: str, write: BinaryIO | Path, size: int | None) -> None:
        # A worker stores a frame per chunk through here: plain ``os`` calls on strings, one syscall per step.
        dest = os.path.join(self._root, check_key(key))
        try:
            fd, tmp = self._temporary()
            try:
                try:
                    if isinstance(write, Path):
                        _copy_file(write, fd)
                    else:
                        _copy_stream(key, write, size, fd)
                finally:
                    os.close(fd)
                try:
                    os.replace(tmp, dest)
                except FileNotFoundError:  # the key's folder is new (rarely: the first object of a job)
                    os.makedirs(os.path.dirname(dest), exist_ok=True)
                    os.replace(tmp, dest)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            raise StorageError(f"local store cannot write {key}: {exc}") from exc

    def move_file(self, key: str, path: Path) -> bool:
        """``put_file`` for a file the caller no longer needs (a frame a worker rendered): renamed into place, so
        the object appears whole at once without being copied, when it is a regular file with no other link on
        the store's file system (returns True); otherwise copied like ``put_file`` (False). Either way ``path``
        is not to be used again. A link is never moved (the object would lead elsewhere), nor a hard-linked file
        (whoever writes the other name would write the object)."""
        dest = os.path.join(self._root, check_key(key))
        try:
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                self._commit(key, Path(path), None)
                return False
            try:
                os.replace(path, dest)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                os.replace(path, dest)
            moved = os.lstat(dest)
            if (moved.st_dev, moved.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(moved.st_mode):
                # Swapped between the check and the rename (by the scene's own scripts, say): what arrived is
                # not the file that was checked and must never be served as the frame.
                os.unlink(dest)
                raise StorageError(f"local store: {key} was replaced while being stored; not stored")
            return True
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise StorageError(f"local store cannot write {key}: {exc}") from exc
        self._commit(key, Path(path), None)  # another file system: a copy
        return False

    def _temporary(self) -> tuple[int, str]:
        """A new file in ``.tmp`` open for writing: named by this process and a counter, created exclusively
        (``O_EXCL``), so no two writers ever share one, whichever process or thread they are in."""
        while True:
            name = os.path.join(self._tmp_dir, f"{os.getpid()}-{next(_NAMES)}.part")
            try:
                return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), name
            except FileExistsError:
                continue  # left by an earlier process with this pid: take the next number
            except FileNotFoundError:
                os.makedirs(self._tmp_dir, exist_ok=True)  # someone removed the folder of temporaries

    def put_file(self, key: str, path: Path) -> None:
        self._commit(key, Path(path), None)

    def put_stream(self, key: str, stream: BinaryIO, size: int) -> None:
        self._commit(key, stream, size)

    def get_file(self, key: str, path: Path) -> None:
        src = self._path(key)
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.part")
            shutil.copyfile(src, tmp)
            os.replace(tmp, path)
        except FileNotFoundError as exc:
            raise ObjectMissing(f"object {key} is not in the store") from exc
        except OSError as exc:
            raise StorageError(f"local store cannot read {key}: {exc}") from exc

    def open(self, key: str) -> Iterator[bytes]:
        path = self._path(key)
        try:
            handle = path.open("rb")
        except FileNotFoundError as exc:
            raise ObjectMissing(f"object {key} is not in the store") from exc
        except OSError as exc:
            raise StorageError(f"local store cannot read {key}: {exc}") from exc

        def chunks() -> Iterator[bytes]:
            with handle:
                while block := handle.read(CHUNK):
                    yield block

        return chunks()

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            return _info(key, self._path(key).stat())
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise StorageError(f"local store cannot stat {key}: {exc}") from exc

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self.root
        # Walk only the folder the prefix names (``outputs/co/job/`` reads one job's files, not the store's).
        folder = prefix.rpartition("/")[0]
        if folder.split("/")[0] == ".tmp":
            return  # partial writes are not objects
        start = base / folder if folder and ".." not in folder.split("/") else base
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = sorted(d for d in dirnames if not (Path(dirpath) == base and d == ".tmp"))
            for name in sorted(filenames):
                full = Path(dirpath) / name
                key = full.relative_to(base).as_posix()
                if key.startswith(prefix):
                    try:
                        st = full.stat()
                    except FileNotFoundError:
                        continue  # deleted while walking
                    yield _info(key, st)

    def local_path(self, key: str) -> Path | None:
        path = self._path(key)
        return path if path.exists() else None


def _copy_file(path: Path, fd: int) -> None:
    src = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        while block := os.read(src, CHUNK):
            _write_all(fd, block)
    finally:
        os.close(src)


def _copy_stream(key: str, stream: BinaryIO, size: int | None, fd: int) -> None:
    remaining = size if size is not None else -1
    while remaining != 0:
        block = stream.read(CHUNK if remaining < 0 else min(CHUNK, remaining))
        if not block:
            break
        _write_all(fd, block)
        if remaining > 0:
            remaining -= len(block)
    if remaining > 0:
        raise StorageError(f"stream for {key} ended {remaining} bytes early")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _info(key: str, st: os.stat_result) -> ObjectInfo:
    return ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))
