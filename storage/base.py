"""The ``ObjectStore`` protocol every backend implements, and the key layout.

Keys are ``/``-separated, never start with ``/`` and never contain ``..``. Layout:

* ``blobs/<company>/<sha256>``: content-addressed job inputs, namespaced per company
* ``outputs/<company>/<job>/<file>``: rendered frames and previews
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from farm.errors import StorageError


@dataclass(frozen=True)
class ObjectInfo:
    """What a backend knows of one stored object."""

    key: str
    size: int
    # When the object was last written, when the backend says (``farm admin fsck`` leaves undated orphans
    # alone). Not part of equality: two answers about the same bytes compare equal.
    modified: datetime | None = field(default=None, compare=False)


@runtime_checkable
class ObjectStore(Protocol):
    """Where blobs and outputs live. Every failure is raised as ``StorageError``."""

    def put_file(self, key: str, path: Path) -> None:
        """Store the file at ``path`` under ``key``; readers never see a partial object."""

    def put_stream(self, key: str, stream: BinaryIO, size: int) -> None:
        """Store ``size`` bytes read from ``stream`` without holding them all in memory."""

    def get_file(self, key: str, path: Path) -> None:
        """Write the object to ``path`` (atomically: a temporary file renamed into place)."""

    def open(self, key: str) -> Iterator[bytes]:
        """Stream the object's bytes in chunks."""

    def stat(self, key: str) -> ObjectInfo | None:
        """Size (and modification time) of the object, or None when absent."""

    def delete(self, key: str) -> None:
        """Remove the object; absent objects are not an error."""

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``."""

    def local_path(self, key: str) -> Path | None:
        """A filesystem path for the object when the backend has one (lets workers hard-link)."""


def check_key(key: str) -> str:
    """Refuse keys that could escape the store's namespace."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in key:
        raise StorageError(f"invalid object key {key!r}")
    return key


def blob_key(company: str, sha256: str) -> str:
    """Key of a content-addressed input blob of ``company``."""
    return check_key(f"blobs/{company}/{sha256}")


def output_key(company: str, job_id: str, name: str) -> str:
    """Key of an output file (frame, preview) of a job."""
    return check_key(f"outputs/{company}/{job_id}/{name}")
