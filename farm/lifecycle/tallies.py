"""Running totals for ``/metrics``, kept up to date as frames are stored and chunks dispatched (issue 15).

A scrape reads these few rows (``metric_totals``: one per series, company and label) and the jobs' own counters
instead of aggregating the frames table, so its cost does not grow with history. They are written in the same
transaction as what they count, by the one scheduler that records frames and dispatches chunks.

Series:

* ``frames_rendered`` (company): frames stored for the first time (a re-rendered frame counts once);
* ``frame_render_seconds`` (company, device): one observation per frame rendered, retries included;
* ``queue_wait_seconds`` (company): per chunk, from becoming runnable (queued or soft-failed) to its dispatch.

Histogram rows keep cumulative counts per upper bound (``BOUNDS``); a series whose bounds change starts over.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from farm.db.models import MetricTotal

FRAMES_RENDERED = "frames_rendered"
FRAME_RENDER_SECONDS = "frame_render_seconds"
QUEUE_WAIT_SECONDS = "queue_wait_seconds"

FRAME_SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
QUEUE_WAIT_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0)
BOUNDS: dict[str, tuple[float, ...]] = {
    FRAMES_RENDERED: (),
    FRAME_RENDER_SECONDS: FRAME_SECONDS_BUCKETS,
    QUEUE_WAIT_SECONDS: QUEUE_WAIT_BUCKETS,
}


def _row(s: Session, series: str, company_id: str, label: str) -> MetricTotal:
    row = s.get(MetricTotal, (series, company_id, label))
    if row is None:
        row = MetricTotal(series=series, company_id=company_id, label=label, count=0, total=0.0, buckets=[])
        s.add(row)
    return row


def observe(s: Session, series: str, company_id: str, values: Iterable[float], label: str = "") -> None:
    """Add observations to a series (a counter when the series has no bounds: each value adds one)."""
    values = list(values)
    if not values:
        return
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
