"""``farm admin fsck [--repair]``: the database and the object store must agree.

Four kinds of disagreement are found:

* a blob row whose object is gone (a job naming it could never be materialised);
* a blob object (``blobs/<company>/<sha256>``) without a row;
* a frame row whose object is gone;
* an object whose size differs from its row's (blobs and frames).

Rows are read before objects are listed. An upload writes its object before its row, so a row read first had
its object by then, and a row without one is a loss (or a blob ``farm admin gc`` is deleting, whose row goes
first anyway); each such finding is checked once more with a stat before it counts. An object without a row, on
the other hand, may be an upload between its two steps: it is deleted only when the store dates it older than
the grace period and no unfinished job names it; undated ones are always kept.

Repair deletes blob rows without objects and blobs of the wrong size (row and object), so the next
``POST /api/v1/blobs/missing`` asks the client for them again, and deletes old orphan blob objects. Frames are
never changed: the jobs that lost some are listed, to be rendered again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from farm.contract import FsckJob, FsckReport, FsckSizeMismatch
from farm.db.engine import Database
from farm.db.models import Blob, Company, Frame, Job
from farm.domain.states import JobStatus
from farm.errors import StorageError
from farm.services.blobs import stat_many
from farm.services.gc import referenced
from storage.base import ObjectInfo, ObjectStore, blob_key

log = logging.getLogger(__name__)

BLOB_PREFIX = "blobs/"
OUTPUT_PREFIX = "outputs/"


@dataclass
class Findings:
    """Disagreements between rows and objects, each confirmed once more after the listing."""

    lost_blobs: list[tuple[str, str]] = field(default_factory=list)  # (company id, sha256): row, no object
    orphans: list[ObjectInfo] = field(default_factory=list)  # blob objects without a row
    lost_frames: list[tuple[str, int, str]] = field(default_factory=list)  # (job id, frame, key)
    blob_sizes: list[tuple[str, str, int, int]] = field(default_factory=list)  # (company, sha, recorded, stored)
    frame_sizes: list[tuple[str, int, str, int, int]] = field(default_factory=list)  # (job, frame, key, rec, stored)


def _blob_pair(key: str) -> tuple[str, str] | None:
    """``(company id, sha256)`` of a key shaped ``blobs/<company>/<sha256>``; None for any other key."""
    parts = key.split("/")
    if len(parts) != 3 or parts[0] + "/" != BLOB_PREFIX:
        return None
    return parts[1], parts[2]


def scan(db: Database, store: ObjectStore) -> Findings:
    """Compare every blob and frame row with the store's listing; changes nothing."""
    with db.session() as s:
        blob_rows = {
            (str(c), str(sha)): int(size) for c, sha, size in s.execute(select(Blob.company_id, Blob.sha256, Blob.size))
        }
        frame_rows: list[tuple[str, int, str, int]] = []
        query = select(Frame.job_id, Frame.frame, Frame.key, Frame.size, Frame.layers)
        for job, frame, key, size, layers in s.execute(query):
            frame_rows.append((str(job), int(frame), str(key), int(size)))
            # A frame written one file per view layer: each file is checked too (the first is the row's own).
            frame_rows += [
                (str(job), int(frame), str(item["key"]), int(str(item["size"])))
                for item in layers or []
                if item.get("key") != key
            ]
    objects = {info.key: info for info in store.list(BLOB_PREFIX)}
    outputs = {info.key: info for info in store.list(OUTPUT_PREFIX)}
    # Frames are stored under outputs/; a row naming another place is looked up one by one.
    elsewhere = sorted({key for _, _, key, _ in frame_rows if not key.startswith(OUTPUT_PREFIX)})
    outputs.update({k: i for k, i in zip(elsewhere, stat_many(store, elsewhere), strict=True) if i is not None})

    found = Findings()
    for (company_id, sha), size in sorted(blob_rows.items()):
        info = objects.pop(blob_key(company_id, sha), None)
        if info is None:
            found.lost_blobs.append((company_id, sha))
        elif info.size != size:
            found.blob_sizes.append((company_id, sha, size, info.size))
    found.orphans = sorted(objects.values(), key=lambda i: i.key)
    for job_id, frame, key, size in sorted(frame_rows):
        info = outputs.get(key)
        if info is None:
            found.lost_frames.append((job_id, frame, key))
        elif info.size != size:
            found.frame_sizes.append((job_id, frame, key, size, info.size))
    return _confirm(db, store, found)


def _confirm(db: Database, store: ObjectStore, found: Findings) -> Findings:
    """Drop findings the world fixed since the listing: a re-stored object, a row committed after its upload."""

    def still(keys: list[str], sizes: list[int | None]) -> list[bool]:
        infos = stat_many(store, keys)
        return [
            info is None if size is None else (info is not None and info.size != size)
            for info, size in zip(infos, sizes, strict=True)
        ]

    keep = still([blob_key(c, sha) for c, sha in found.lost_blobs], [None] * len(found.lost_blobs))
    found.lost_blobs = [b for b, k in zip(found.lost_blobs, keep, strict=True) if k]
    keep = still([blob_key(c, sha) for c, sha, _, _ in found.blob_sizes], [r for _, _, r, _ in found.blob_sizes])
    found.blob_sizes = [b for b, k in zip(found.blob_sizes, keep, strict=True) if k]
    keep = still([key for _, _, key in found.lost_frames], [None] * len(found.lost_frames))
    found.lost_frames = [f for f, k in zip(found.lost_frames, keep, strict=True) if k]
    keep = still([key for _, _, key, _, _ in found.frame_sizes], [r for _, _, _, r, _ in found.frame_sizes])
    found.frame_sizes = [f for f, k in zip(found.frame_sizes, keep, strict=True) if k]

    by_company: dict[str, list[str]] = defaultdict(list)
    for info in found.orphans:
        pair = _blob_pair(info.key)
        if pair is not None:
            by_company[pair[0]].append(pair[1])
    recorded: set[tuple[str, str]] = set()
    with db.session() as s:
        for company_id, shas in by_company.items():
            for i in range(0, len(shas), 500):
                query = select(Blob.sha256).where(Blob.company_id == company_id, Blob.sha256.in_(shas[i : i + 500]))
                recorded.update((company_id, str(sha)) for sha in s.scalars(query))
    found.orphans = [i for i in found.orphans if _blob_pair(i.key) not in recorded]
    return found


def deletable(
    orphans: list[ObjectInfo], now: datetime, grace: timedelta, needed: AbstractSet[tuple[str, str]] = frozenset()
) -> tuple[list[ObjectInfo], list[ObjectInfo]]:
    """Split orphan blob objects into (to delete, kept).

    Kept: undated ones, those younger than the grace period, and those a live job names (``needed``: company id,
    sha256) whose bytes a worker may still fetch though the row is gone.
    """
    cutoff = now - grace
    old: list[ObjectInfo] = []
    kept: list[ObjectInfo] = []
    for info in orphans:
        if info.modified is None or info.modified > cutoff or _blob_pair(info.key) in needed:
            kept.append(info)
        else:
            old.append(info)
    return old, kept


def check(db: Database, store: ObjectStore, now: datetime, repair: bool, grace: timedelta) -> FsckReport:
    """Scan, and with ``repair`` fix what can be fixed safely; the report says what was found and done."""
    found = scan(db, store)
    with db.session() as s:
        needed = referenced(s, now)  # jobs not finished yet (none is created or finished after now)
    old, young = deletable(found.orphans, now, grace, needed)
    deleted_rows = deleted_objects = failed = 0
    if repair:
        bad_rows = [(c, sha, "absent") for c, sha in found.lost_blobs] + [
            (c, sha, f"{got} bytes, not {rec}") for c, sha, rec, got in found.blob_sizes
        ]
        with db.session() as s:
            for company_id, sha, why in bad_rows:
                result = s.execute(delete(Blob).where(Blob.company_id == company_id, Blob.sha256 == sha))
                deleted_rows += int(getattr(result, "rowcount", 0) or 0)
                log.warning("fsck: deleted the row of blob %s of company %s: its object is %s", sha, company_id, why)
        # A blob of the wrong size goes with its row (the client uploads it again); old orphans go alone.
        for key in [blob_key(c, sha) for c, sha, _, _ in found.blob_sizes] + [i.key for i in old]:
            try:
                store.delete(key)
                deleted_objects += 1
            except StorageError as exc:
                failed += 1
                log.warning("fsck: could not delete %s: %s", key, exc)
        log.info(
            "fsck: deleted %d blob row(s) and %d object(s); %d object(s) could not be deleted",
            deleted_rows,
            deleted_objects,
            failed,
        )
    return FsckReport(
        repaired=repair,
        grace_minutes=grace.total_seconds() / 60,
        blob_rows_without_objects=[blob_key(c, sha) for c, sha in found.lost_blobs],
        blob_objects_without_rows=[i.key for i in found.orphans],
        frames_without_objects=[key for _, _, key in found.lost_frames],
        size_mismatches=[
            FsckSizeMismatch(key=blob_key(c, sha), recorded=rec, stored=got) for c, sha, rec, got in found.blob_sizes
        ]
        + [FsckSizeMismatch(key=key, recorded=rec, stored=got) for _, _, key, rec, got in found.frame_sizes],
        jobs_with_lost_frames=_jobs(db, found),
        orphans_kept=[i.key for i in young],
        deleted_rows=deleted_rows,
        deleted_objects=deleted_objects,
        failed_deletes=failed,
    )


def _jobs(db: Database, found: Findings) -> list[FsckJob]:
    """The jobs whose frames are missing or of the wrong size, with those frame numbers."""
    frames: dict[str, set[int]] = defaultdict(set)
    for job_id, frame, _ in found.lost_frames:
        frames[job_id].add(frame)
    for job_id, frame, _, _, _ in found.frame_sizes:
        frames[job_id].add(frame)
    if not frames:
        return []
    ids = sorted(frames)
    out: list[FsckJob] = []
    with db.session() as s:
        for i in range(0, len(ids), 500):
            query = (
                select(Job.id, Company.name, Job.status)
                .join(Company, Company.id == Job.company_id)
                .where(Job.id.in_(ids[i : i + 500]))
                .order_by(Job.id)
            )
            out.extend(
                FsckJob(id=str(job_id), company=str(company), status=JobStatus(status), frames=sorted(frames[job_id]))
                for job_id, company, status in s.execute(query)
            )
    return out
