"""Content-addressed input blobs, namespaced per company: which are missing, and verified uploads."""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from farm.auth import Principal
from farm.contract import BlobCommit, DirectUpload
from farm.db.models import Blob
from farm.errors import PayloadTooLarge, ValidationFailed
from storage.base import ObjectStore, blob_key, check_key


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


# ---- direct uploads (S3 backend): presigned PUT to a staging key, then a verified commit -----------------
# A client PUTs to ``uploads/<company>/<sha256>/<upload id>``, never to the blob's own key: a stale or
# reused URL can then never overwrite a blob that already counts. The commit streams the staged object
# once, hashing it, and only a match becomes ``blobs/<company>/<sha256>``. The upload id starts with the
# creation time in hex, so ``farm admin gc`` can remove uploads that were never committed.
UPLOAD_PREFIX = "uploads/"
PRESIGN_EXPIRES_S = 3600
MAX_DIRECT_UPLOADS = 5000  # per answer; the client streams the rest through the API


def upload_key(company: str, sha256: str, upload_id: str) -> str:
    """Staging key of one direct upload."""
    return check_key(f"{UPLOAD_PREFIX}{company}/{sha256}/{upload_id}")


def new_upload_id(now: datetime) -> str:
    """32 hex characters: the creation time (seconds, 12 hex) and 20 random ones."""
    return f"{int(now.timestamp()):012x}{secrets.token_hex(10)}"


def upload_created(upload_id: str) -> datetime | None:
    """When an upload id was issued (None for a name that is not one)."""
    if len(upload_id) != 32:
        return None
    try:
        return datetime.fromtimestamp(int(upload_id[:12], 16), UTC)
    except (ValueError, OverflowError, OSError):
        return None


def direct_uploads(
    store: ObjectStore, who: Principal, missing_hashes: list[str], now: datetime
) -> dict[str, DirectUpload]:
    """Presigned PUT URLs for missing blobs when the store offers them (S3); empty otherwise."""
    presign = getattr(store, "presigned_put_url", None)
    if presign is None:
        return {}
    out: dict[str, DirectUpload] = {}
    for sha in missing_hashes[:MAX_DIRECT_UPLOADS]:
        upload_id = new_upload_id(now)
        url = presign(upload_key(who.company_id, sha, upload_id), PRESIGN_EXPIRES_S)
        out[sha] = DirectUpload(url=str(url), upload=upload_id)
    return out


def commit_direct(
    session: Session,
    store: ObjectStore,
    who: Principal,
    sha256: str,
    body: BlobCommit,
    spool_dir: Path,
    max_bytes: int,
    now: datetime,
) -> tuple[bool, int]:
    """Check a direct upload's size and sha256 and make it count; returns (created, size).

    Whatever happens, the staged object is deleted: a good one has become the blob, a bad one is refused
    (413 over the maximum, 422 for a size or hash that differs) and nothing of it is kept.
    """
    staged = upload_key(who.company_id, sha256, body.upload)
    try:
        if session.get(Blob, (who.company_id, sha256)) is not None:
            return False, body.size
        info = store.stat(staged)
        if info is None:
            raise ValidationFailed(
                f"nothing was uploaded for blob {sha256} with upload id {body.upload}: PUT the file to the URL "
                "from POST /api/v1/blobs/missing first (or PUT /api/v1/blobs/{sha256} through the API)"
            )
        if info.size > max_bytes:
            raise PayloadTooLarge(f"upload of {info.size} bytes is over the maximum of {max_bytes} bytes")
        if info.size != body.size:
            raise ValidationFailed(f"the stored upload has {info.size} bytes, not the {body.size} announced")
        spool_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=spool_dir, prefix="commit-")
        path = Path(name)
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                for block in store.open(staged):
                    digest.update(block)
                    out.write(block)
            if digest.hexdigest() != sha256:
                raise ValidationFailed(
                    f"uploaded bytes hash to {digest.hexdigest()}, not {sha256}: the file changed or was corrupted"
                )
            created = commit(session, store, who, sha256, path, info.size, now)
        finally:
            path.unlink(missing_ok=True)
        return created, info.size
    finally:
        store.delete(staged)
