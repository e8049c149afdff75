"""Local-directory backend: the embedded default. Objects are plain files under one root."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from farm.errors import ObjectMissing, StorageError
from storage.base import ObjectInfo, check_key

CHUNK = 1024 * 1024


class LocalDirStore:
    """An ``ObjectStore`` over a directory. Writes go to a temporary file renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._tmp = self.root / ".tmp"
        self._tmp.mkdir(exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _commit(self, key: str, write: BinaryIO | Path, size: int | None) -> None:
        dest = self._path(key)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=self._tmp)
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as out:
                    if isinstance(write, Path):
                        with write.open("rb") as src:
                            shutil.copyfileobj(src, out, CHUNK)
                    else:
                        remaining = size if size is not None else -1
                        while remaining != 0:
                            block = write.read(CHUNK if remaining < 0 else min(CHUNK, remaining))
                            if not block:
                                break
                            out.write(block)
                            if remaining > 0:
                                remaining -= len(block)
                        if remaining > 0:
                            raise StorageError(f"stream for {key} ended {remaining} bytes early")
                os.replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"local store cannot write {key}: {exc}") from exc

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


def _info(key: str, st: os.stat_result) -> ObjectInfo:
    return ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))
