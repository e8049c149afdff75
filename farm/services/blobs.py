"""Content-addressed input blobs, namespaced per company: which are missing, and verified uploads."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from farm.contract import BlobCommit, DirectUpload
from farm.db.models import Blob
from farm.errors import PayloadTooLarge, ValidationFailed
from farm.services import library
from farm.services.auth import Principal
from storage.base import ObjectInfo, ObjectStore, blob_key, check_key

log = logging.getLogger(__name__)

STAT_THREADS = 8  # the S3 backend makes one HTTP HEAD per stat: a few at once, not one per hash


def stat_many(store: ObjectStore, keys: Sequence[str], threads: int = STAT_THREADS) -> list[ObjectInfo | None]:
    """``store.stat`` of each key, in order, on a small thread pool; the first ``StorageError`` is raised."""
    if len(keys) <= 1:
        return [store.stat(k) for k in keys]
    pool = ThreadPoolExecutor(max_workers=min(threads, len(keys)), thread_name_prefix="stat")
    try:
        return list(pool.map(store.stat, keys))
    finally:
        # After a failure, the stats not started yet are dropped rather than waited for.
        pool.shutdown(wait=True, cancel_futures=True)


def missing(session: Session, store: ObjectStore, who: Principal, hashes: list[str]) -> list[str]:
    """The hashes this company has to upload (another company's blobs never count).

    A row is trusted only while its object is in the store with the row's size: a row whose object was lost
    (deleted behind the farm's back, a restore from mismatched backups) is deleted and its hash reported
    missing, so the client uploads it again instead of submitting a job no worker can materialise.
    """
    wanted = sorted(set(hashes))
    held: dict[str, int] = {}
    for i in range(0, len(wanted), 500):
        part = wanted[i : i + 500]
        rows = session.execute(
            select(Blob.sha256, Blob.size).where(Blob.company_id == who.company_id, Blob.sha256.in_(part))
        )
        held.update((str(sha), int(size)) for sha, size in rows)
    shas = sorted(held)
    infos = stat_many(store, [blob_key(who.company_id, sha) for sha in shas])
    lost: list[str] = []
    for sha, info in zip(shas, infos, strict=True):
        if info is not None and info.size == held[sha]:
            continue
        lost.append(sha)
        log.warning(
            "blob %s of company %s (%s) is recorded but its object is %s: forgetting it so it is uploaded again",
            sha,
            who.company,
            who.company_id,
            "absent" if info is None else f"{info.size} bytes, not {held[sha]}",
        )
    for i in range(0, len(lost), 500):
        session.execute(delete(Blob).where(Blob.company_id == who.company_id, Blob.sha256.in_(lost[i : i + 500])))
    gone = set(lost)
    lacking = [h for h in wanted if h not in held or h in gone]
    # Issue 20: a live library asset visible to the company is held for it (stored once, used by reference);
    # nothing about another company's unpublished blobs is ever consulted.
    shared = library.held_in_library(session, store, who, lacking) if lacking else set()
    return [h for h in lacking if h not in shared]


def _held(store: ObjectStore, row: Blob | None) -> bool:
    """Whether a blob row's object is in the store with the row's size."""
    if row is None:
        return False
    info = store.stat(blob_key(row.company_id, row.sha256))
    return info is not None and info.size == row.size


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
    """Store a verified upload and record it; False when the company already held it (row and object).

    A row whose object is gone or has another size gets the object again from this upload.
    """
    try:
        row = session.get(Blob, (who.company_id, sha256))
        if _held(store, row):
            return False
        store.put_file(blob_key(who.company_id, sha256), path)
        if row is None:
            session.add(Blob(company_id=who.company_id, sha256=sha256, size=size, created_at=now))
        else:
            log.warning(
                "blob %s of company %s (%s) was recorded without its object: stored it again",
                sha256,
                who.company,
                who.company_id,
            )
            row.size = size
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
        if _held(store, session.get(Blob, (who.company_id, sha256))):
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
