"""Running totals for ``/metrics``, kept up to date as frames are stored and chunks dispatched (issue 15).

A scrape reads these few rows (``metric_totals``: one per series, company and label) and the jobs' own counters
instead of aggregating the frames table, so its cost does not grow with history. They are written in the same
transaction as what they count, by the one scheduler that records frames and dispatches chunks.

Series:

* ``frames_rendered`` (company): frames stored for the first time (a re-rendered frame counts once);
* ``frame_render_seconds`` (company, device): one observation per frame rendered, retries included;
* ``queue_wait_seconds`` (company): per chunk, from becoming runnable (queued or soft-failed) to its dispatch;
* ``resource_seconds`` (company, resource ``cpu``/``gpu``): the ledger's resource-seconds, added as rows are
  appended (``farm.metering.ledger``);
* ``storage_errors`` (process ``scheduler``/``workers`` in the company column, operation): failed store calls
  of the processes that serve no ``/metrics`` themselves (``scheduler.store_errors``);
* ``chunks_per_call`` (company): per call the scheduler sends a worker, how many chunks it carries (1, or a bundle
  of short chunks: ``scheduler.bundles``).

Histogram rows keep cumulative counts per upper bound (``BOUNDS``); a series whose bounds change starts over.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from farm.db import deferred
from farm.db.models import MetricTotal

FRAMES_RENDERED = "frames_rendered"
FRAME_RENDER_SECONDS = "frame_render_seconds"
QUEUE_WAIT_SECONDS = "queue_wait_seconds"
RESOURCE_SECONDS = "resource_seconds"
STORAGE_ERRORS = "storage_errors"
CHUNKS_PER_CALL = "chunks_per_call"

FRAME_SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
QUEUE_WAIT_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0)
CHUNKS_PER_CALL_BUCKETS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0)
BOUNDS: dict[str, tuple[float, ...]] = {
    FRAMES_RENDERED: (),
    FRAME_RENDER_SECONDS: FRAME_SECONDS_BUCKETS,
    QUEUE_WAIT_SECONDS: QUEUE_WAIT_BUCKETS,
    RESOURCE_SECONDS: (),
    STORAGE_ERRORS: (),
    CHUNKS_PER_CALL: CHUNKS_PER_CALL_BUCKETS,
}


#: ``Session.info`` keys: the rows of each series this session read, held for the rest of the transaction; the
#: observations gathered since the session last wrote, by series, company and label.
_LOADED = "farm.tallies.rows"
_GATHERED = "farm.tallies.gathered"


def _row(s: Session, series: str, company_id: str, label: str) -> MetricTotal:
    """The series' row for ``company_id`` and ``label``. The rows of every series (one per series, company and
    label: few) are read once per transaction, so a dispatch pass that records many chunks pays one query, not one
    per series or observation."""
    loaded: dict[str, dict[tuple[str, str], MetricTotal]] | None = s.info.get(_LOADED)
    if loaded is None:
        # Every series at once (a few rows), and without autoflush: a flush here, in the middle of a pass, would
        # write rows the pass changes again later (an UPDATE per flush instead of one at the commit).
        loaded = {name: {} for name in BOUNDS}
        with s.no_autoflush:
            for r in s.scalars(select(MetricTotal).where(MetricTotal.series.in_(list(BOUNDS)))):
                loaded.setdefault(r.series, {})[(r.company_id, r.label)] = r
        s.info[_LOADED] = loaded
        deferred.forget_on_rollback(s, _LOADED)
    rows = loaded.setdefault(series, {})
    row = rows.get((company_id, label))
    if row is None:
        row = MetricTotal(series=series, company_id=company_id, label=label, count=0, total=0.0, buckets=[])
        s.add(row)
        rows[(company_id, label)] = row
    return row


def observe(s: Session, series: str, company_id: str, values: Iterable[float], label: str = "") -> None:
    """Add observations to a series (a counter when the series has no bounds: each value adds one). They are
    gathered and added to the row once, before the session's next statement or its commit (``farm.db.deferred``):
    a pass that records 48 chunks changes each row once, not 48 times."""
    values = list(values)
    if not values:
        return
    _row(s, series, company_id, label)  # the rows are read now, once per transaction (not in the middle of a write)
    gathered: dict[tuple[str, str, str], list[float]] | None = s.info.get(_GATHERED)
    if gathered is None:
        gathered = s.info[_GATHERED] = {}
        deferred.before_write(s, _GATHERED, _fold)
    key = (series, company_id, label)
    known = gathered.get(key)
    if known is None:
        gathered[key] = values
    else:
        known.extend(values)


def _fold(s: Session) -> None:
    """Add the gathered observations to their rows."""
    gathered: dict[tuple[str, str, str], list[float]] = s.info.pop(_GATHERED, None) or {}
    for (series, company_id, label), values in gathered.items():
        bounds = BOUNDS[series]
        row = _row(s, series, company_id, label)
        buckets = list(row.buckets or [])
        if len(buckets) != len(bounds):
            buckets = [0] * len(bounds)
        for value in values:
            for i, bound in enumerate(bounds):
                if value <= bound:
                    buckets[i] += 1
        row.count = int(row.count or 0) + len(values)
        row.total = float(row.total or 0.0) + float(sum(values))
        row.buckets = buckets  # a new list: the JSON column sees the change


def chunk_waited(s: Session, company_id: str, seconds: float) -> None:
    """A chunk was dispatched after waiting ``seconds`` (negative clock steps count as 0)."""
    observe(s, QUEUE_WAIT_SECONDS, company_id, [max(seconds, 0.0)])


@dataclass(frozen=True)
class Total:
    """One row as a scrape reads it."""

    company_id: str
    label: str
    count: int
    total: float
    buckets: tuple[int, ...]


def read(s: Session, series: str) -> list[Total]:
    """Every row of a series, ordered by company and label; histogram buckets as long as the series' bounds."""
    bounds = BOUNDS[series]
    out = []
    for row in s.scalars(
        select(MetricTotal).where(MetricTotal.series == series).order_by(MetricTotal.company_id, MetricTotal.label)
    ):
        buckets = tuple(row.buckets or ())
        if len(buckets) != len(bounds):
            buckets = (0,) * len(bounds)
        out.append(Total(row.company_id, row.label, int(row.count or 0), float(row.total or 0.0), buckets))
    return out


def rebuild(s: Session) -> None:
    """Recompute the totals that rows can tell (frames, render times, resource-seconds) and every job's frame bytes
    and last frame time from the frames and the ledger: a full scan, for repairs and benchmarks, never a scrape.
    Queue waits are not in any row: they stay as they are."""
    from sqlalchemy import case, delete, func, update

    from farm.db.models import Frame, Job, UsageEntry

    s.execute(
        delete(MetricTotal).where(MetricTotal.series.in_([FRAMES_RENDERED, FRAME_RENDER_SECONDS, RESOURCE_SECONDS]))
    )
    per_job = select(Frame.job_id, func.sum(Frame.size), func.max(Frame.created_at)).group_by(Frame.job_id)
    for job_id, size, last in s.execute(per_job).all():
        s.execute(update(Job).where(Job.id == job_id).values(frames_bytes=int(size or 0), last_frame_at=last))
    device = func.lower(func.coalesce(Frame.device, ""))
    rows = s.execute(
        select(
            Job.company_id,
            device,
            func.count(),
            func.sum(Frame.render_seconds),
            *(func.sum(case((Frame.render_seconds <= b, 1), else_=0)) for b in FRAME_SECONDS_BUCKETS),
        )
        .join(Job, Job.id == Frame.job_id)
        .group_by(Job.company_id, device)
    ).all()
    frames: dict[str, int] = {}
    for company_id, label, count, total, *buckets in rows:
        frames[company_id] = frames.get(company_id, 0) + int(count)
        s.add(
            MetricTotal(
                series=FRAME_RENDER_SECONDS,
                company_id=company_id,
                label=str(label),
                count=int(count),
                total=float(total or 0.0),
                buckets=[int(b or 0) for b in buckets],
            )
        )
    for company_id, count in frames.items():
        s.add(
            MetricTotal(
                series=FRAMES_RENDERED, company_id=company_id, label="", count=count, total=float(count), buckets=[]
            )
        )
    for company_id, resource, count, total in s.execute(
        select(
            UsageEntry.company_id, UsageEntry.resource, func.count(), func.sum(UsageEntry.seconds * UsageEntry.count)
        )
        .where(UsageEntry.resource.in_(("cpu", "gpu")))
        .group_by(UsageEntry.company_id, UsageEntry.resource)
    ).all():
        s.add(
            MetricTotal(
                series=RESOURCE_SECONDS,
                company_id=company_id,
                label=str(resource),
                count=int(count),
                total=float(total or 0.0),
                buckets=[],
            )
        )
