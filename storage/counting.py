"""Counting a store's failures, in any process that talks to the store (issue 15).

``CountingStore`` wraps an ``ObjectStore`` and calls ``on_error(operation)`` for each ``StorageError`` it lets
through. The API counts into its prometheus counter (``web.metrics``); the scheduler and each render worker count
into an ``ErrorCounts`` whose totals the scheduler writes to the database (``farm_cluster_storage_errors_total``),
since neither serves ``/metrics`` itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from farm.errors import StorageError
from storage.base import ObjectInfo, ObjectStore

OPERATIONS = ("put_file", "put_stream", "get_file", "open", "stat", "delete", "list", "local_path")
_T = TypeVar("_T")


class ErrorCounts:
    """Failures per operation since this process started; safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def __call__(self, operation: str) -> None:
        with self._lock:
            self._counts[operation] = self._counts.get(operation, 0) + 1

    def snapshot(self) -> dict[str, int]:
        """The totals so far (cumulative: a reader keeps what it saw and takes the difference)."""
        with self._lock:
            return dict(self._counts)


class CountingStore:
    """An ``ObjectStore`` that reports the ``StorageError``s of the store it wraps, by operation."""

    def __init__(self, inner: ObjectStore, on_error: Callable[[str], None]) -> None:
        self.inner = inner
        self._failed = on_error

    def put_file(self, key: str, path: Path) -> None:
        try:
            self.inner.put_file(key, path)
        except StorageError:
            self._failed("put_file")
            raise

    def move_file(self, key: str, path: Path) -> bool:
        """``put_file`` of a file the caller no longer needs: a backend that can take it by renaming it into
        place (``LocalDirStore.move_file``) does and says so (True); any other copies it. Counted as
        ``put_file``."""
        move = getattr(self.inner, "move_file", None)
        try:
            if move is not None:
                return bool(move(key, path))
            self.inner.put_file(key, path)
            return False
        except StorageError:
            self._failed("put_file")
            raise

    def put_stream(self, key: str, stream: BinaryIO, size: int) -> None:
        try:
            self.inner.put_stream(key, stream, size)
        except StorageError:
            self._failed("put_stream")
            raise

    def get_file(self, key: str, path: Path) -> None:
        try:
            self.inner.get_file(key, path)
        except StorageError:
            self._failed("get_file")
            raise

    def open(self, key: str) -> Iterator[bytes]:
        try:
            chunks = self.inner.open(key)  # some backends fail here, others while streaming: count both
        except StorageError:
            self._failed("open")
            raise
        return self._counted(chunks, "open")

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            return self.inner.stat(key)
        except StorageError:
            self._failed("stat")
            raise

    def delete(self, key: str) -> None:
        try:
            self.inner.delete(key)
        except StorageError:
            self._failed("delete")
            raise

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        try:
            infos = self.inner.list(prefix)
        except StorageError:
            self._failed("list")
            raise
        return self._counted(infos, "list")

    def _counted(self, items: Iterator[_T], operation: str) -> Iterator[_T]:
        try:
            yield from items
        except StorageError:
            self._failed(operation)
            raise

    def local_path(self, key: str) -> Path | None:
        try:
            return self.inner.local_path(key)
        except StorageError:
            self._failed("local_path")
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # backend extras (e.g. close) stay reachable
