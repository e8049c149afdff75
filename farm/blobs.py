"""Content-addressed input blobs, namespaced per company: which are missing, and verified uploads."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from farm.auth import Principal
from farm.db.models import Blob
from farm.errors import PayloadTooLarge, ValidationFailed
from storage.base import ObjectStore, blob_key


def missing(session: Session, who: Principal, hashes: list[str]) -> list[str]:
    """The hashes this company has not uploaded (another company's blobs never count)."""
    wanted = sorted(set(hashes))
    held: set[str] = set()
    for i in range(0, len(wanted), 500):
        part = wanted[i : i + 500]
        held.update(
            session.scalars(
                select(Blob.sha256).where(Blob.company_id == who.company_id, Blob.sha256.in_(part))
            )
        )
    return [h for h in wanted if h not in held]


async def receive(
    body: AsyncIterator[bytes], sha256: str, spool_dir: Path, max_bytes: int, declared: int | None
) -> tuple[Path, int]:
    """Spool an upload to a temp file while hashing; refuse it (keeping nothing) unless the hash matches."""
    if declared is not None and declared > max_bytes:
        raise PayloadTooLarge(f"upload of {declared} bytes is over the maximum of {max_bytes} bytes")
    spool_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=spool_dir, prefix="upload-")
    path = Path(name)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            async for block in body:
                size += len(block)
                if size > max_bytes:
                    raise PayloadTooLarge(f"upload is over the maximum of {max_bytes} bytes")
                digest.update(block)
                out.write(block)
        if declared is not None and size != declared:
            raise ValidationFailed(f"upload ended after {size} of the {declared} bytes announced")
        if digest.hexdigest() != sha256:
            raise ValidationFailed(
                f"uploaded bytes hash to {digest.hexdigest()}, not {sha256}: the file changed or was corrupted"
            )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, size


def commit(
    session: Session, store: ObjectStore, who: Principal, sha256: str, path: Path, size: int, now: datetime
) -> bool:
    """Store a verified upload and record it; False when the company already held it."""
    try:
        if session.get(Blob, (who.company_id, sha256)) is not None:
            return False
        store.put_file(blob_key(who.company_id, sha256), path)
        session.add(Blob(company_id=who.company_id, sha256=sha256, size=size, created_at=now))
        return True
    finally:
        path.unlink(missing_ok=True)
