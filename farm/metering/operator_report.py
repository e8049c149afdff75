"""The operator's monthly report (issue 20): how well the shared hardware was used, per pool, and by whom.

Every figure comes from rows the farm already keeps: the usage ledger (``usage_ledger``: attempts, storage, and
the capacity samples this module writes), the attempts the lifecycle records (``task_attempts``), the heartbeat
rows (``workers``), the jobs' creation times and the library's use rows. The formulas (README, "Shared platform"):

* **pool** of an attempt: ``gpu`` when its ledger rows include ``gpu``, else ``cpu``. A lost attempt (no ledger
  row) takes the pool of its slot's heartbeat row (``workers.gpus > 0``), else of its job's ``gpu`` setting.
* **capacity slot-hours** = Σ ``count * seconds`` / 3600 of the ledger's ``capacity_gpu`` / ``capacity_cpu`` rows
  (``CapacitySampler``: slots with a fresh heartbeat, sampled by the scheduler loop).
* **used slot-hours** = Σ over the pool's attempts in the ledger of the attempt's wall ``seconds`` / 3600
  (one slot per attempt, whatever its resource count).
* **utilisation** = used / capacity (0 without capacity); **idle hours** = max(capacity - used, 0).
* **queue wait** of an attempt = its ``started_at`` - the job's ``created_at`` (attempt 1) or - the previous
  attempt's ``ended_at`` (later attempts); p50 and p95 by nearest rank over the month's attempts.
* **share** of a company = its used slot-hours / the pool's used slot-hours.
* **cost recovered** = Σ ``count * seconds`` / 3600 * the company's rate card price for the row's resource, over
  the pool's attempt rows (what ``farm usage`` bills).
* **failed / node-failed / lost attempts**: ``task_attempts`` started in the month with status ``failed``
  (``fault = node`` for node-failed) or ``lost``; **platform slot-hours** = their wall hours (node-failed + lost);
  **unbilled slot-hours** = the lost ones' (the ledger has no row for them, so no company paid).
* **library reuse**: uses = ``library_uses`` rows of the month; uploads avoided = (company, asset) pairs whose
  first use falls in the month, the publisher's own excluded; bytes avoided = those assets' sizes.

A month is ``[first instant, first instant of the next)`` in UTC, by ``started_at`` (``used_at`` for library uses).
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from farm.clock import Clock, utc
from farm.contract import LibraryReuse, OperatorReport, PoolCompany, PoolReport, Role
from farm.db.engine import Database
from farm.db.models import Company, Job, LibraryAsset, LibraryUse, Task, TaskAttempt, UsageEntry, WorkerBeat
from farm.metering import ledger
from farm.metering.ledger import month_bounds
from farm.metering.money import DEFAULT_CURRENCY
from farm.services.auth import Principal, require

log = logging.getLogger(__name__)

POOLS = ("gpu", "cpu")
CAPACITY = {"gpu": "capacity_gpu", "cpu": "capacity_cpu"}
PLATFORM = ""  # the company id of the platform's own ledger rows (capacity): no company's bill
BEAT_FRESH_S = 30.0  # a slot whose heartbeat row is older is not counted as capacity


# ---- capacity samples ------------------------------------------------------------------------------------------
def slots_now(session: Session, now: datetime, fresh_s: float = BEAT_FRESH_S) -> dict[str, int]:
    """Render slots per pool with a fresh heartbeat and not lost."""
    counts = {pool: 0 for pool in POOLS}
    rows = session.execute(
        select(WorkerBeat.gpus).where(
            WorkerBeat.beat_at >= now - timedelta(seconds=fresh_s), WorkerBeat.state != "lost"
        )
    )
    for (gpus,) in rows:
        counts["gpu" if (gpus or 0) > 0 else "cpu"] += 1
    return counts


def record_capacity(session: Session, slots: dict[str, int], now: datetime, seconds: float) -> int:
    """Append one ledger row per pool with slots: ``count`` slots held for ``seconds`` up to ``now``."""
    written = 0
    for pool, count in sorted(slots.items()):
        if count <= 0 or seconds <= 0:
            continue
        ledger.record(
            session,
            ledger.Usage(
                company_id=PLATFORM,
                job_id=None,
                task_id=None,
                attempt=None,
                node="",
                resource=CAPACITY[pool],
                count=float(count),
                started_at=now - timedelta(seconds=seconds),
                ended_at=now,
                seconds=seconds,
                outcome="sampled",
            ),
        )
        written += 1
    return written


class CapacitySampler:
    """Ticked by the scheduler loop: every ``interval_s`` it writes the slots the heartbeat saw since the last
    sample (the first tick only marks the start). A database error is logged; the next sample covers the gap."""

    def __init__(self, db: Database, clock: Clock, interval_s: float = 60.0) -> None:
        self.db = db
        self.clock = clock
        self.interval_s = interval_s
        self.last: datetime | None = None

    def __call__(self) -> None:
        now = self.clock.now()
        if self.last is not None and (now - self.last).total_seconds() < self.interval_s:
            return
        if self.last is None:
            self.last = now
            return
        try:
            with self.db.session() as s:
                record_capacity(s, slots_now(s, now), now, (now - self.last).total_seconds())
            self.last = now
        except Exception as exc:  # never stop dispatching for a report's sample
            log.warning("capacity sample skipped: %s", exc)


# ---- the report ------------------------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100): the smallest value with at least q% of values at or below."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class _Attempt:
    company_id: str
    job_id: str
    task_id: str
    number: int
    started_at: datetime
    ended_at: datetime
    seconds: float
    resources: dict[str, float] = field(default_factory=dict)  # resource -> resource-seconds


def _attempts(session: Session, start: datetime, end: datetime) -> list[_Attempt]:
    rows = session.execute(
        select(
            UsageEntry.company_id,
            UsageEntry.job_id,
            UsageEntry.task_id,
            UsageEntry.attempt,
            UsageEntry.resource,
            UsageEntry.count,
            UsageEntry.seconds,
            UsageEntry.started_at,
            UsageEntry.ended_at,
        ).where(
            UsageEntry.resource.in_(POOLS),
            UsageEntry.task_id.is_not(None),
            UsageEntry.started_at >= start,
            UsageEntry.started_at < end,
        )
    ).all()
    found: dict[tuple[str, str, int], _Attempt] = {}
    for company_id, job_id, task_id, number, resource, count, seconds, started, ended in rows:
        key = (str(job_id), str(task_id), int(number or 0))
        att = found.get(key)
        if att is None:
            att = found[key] = _Attempt(
                str(company_id), str(job_id), str(task_id), int(number or 0), started, ended, float(seconds)
            )
        att.seconds = max(att.seconds, float(seconds))
        att.resources[str(resource)] = att.resources.get(str(resource), 0.0) + float(count) * float(seconds)
    return list(found.values())


def _pool(att: _Attempt) -> str:
    return "gpu" if "gpu" in att.resources else "cpu"


def _waits(session: Session, attempts: list[_Attempt]) -> dict[tuple[str, int], float]:
    """Queue wait per (task, attempt number), by the formula in the module docstring."""
    task_ids = sorted({a.task_id for a in attempts})
    created: dict[str, datetime] = {}
    for i in range(0, len(task_ids), 500):
        rows = session.execute(
            select(Task.id, Job.created_at).join(Job, Job.id == Task.job_id).where(Task.id.in_(task_ids[i : i + 500]))
        )
        created.update((str(t), c) for t, c in rows)
    ends: dict[tuple[str, int], datetime] = {}
    for i in range(0, len(task_ids), 500):
        ended_rows = session.execute(
            select(UsageEntry.task_id, UsageEntry.attempt, UsageEntry.ended_at).where(
                UsageEntry.task_id.in_(task_ids[i : i + 500]), UsageEntry.resource.in_(POOLS)
            )
        )
        for task_id, number, ended in ended_rows:
            ends[(str(task_id), int(number or 0))] = ended
    waits: dict[tuple[str, int], float] = {}
    for att in attempts:
        since = created.get(att.task_id) if att.number <= 1 else ends.get((att.task_id, att.number - 1))
        if since is None:
            continue
        waits[(att.task_id, att.number)] = max((utc(att.started_at) - utc(since)).total_seconds(), 0.0)
    return waits


def _troubles(session: Session, start: datetime, end: datetime) -> dict[str, dict[str, float]]:
    """Per pool: failed, node-failed and lost attempts and their wall hours (``task_attempts``)."""
    out: dict[str, dict[str, float]] = {p: defaultdict(float) for p in POOLS}
    rows = session.execute(
        select(
            TaskAttempt.status,
            TaskAttempt.fault,
            TaskAttempt.worker,
            TaskAttempt.started_at,
            TaskAttempt.ended_at,
            TaskAttempt.seconds,
            Job.settings,
        )
        .join(Task, Task.id == TaskAttempt.task_id)
        .join(Job, Job.id == Task.job_id)
        .where(
            TaskAttempt.status.in_(["failed", "lost"]), TaskAttempt.started_at >= start, TaskAttempt.started_at < end
        )
    ).all()
    slot_gpus = dict(session.execute(select(WorkerBeat.name, WorkerBeat.gpus)).all())
    for status, fault, worker, started, ended, seconds, settings in rows:
        if worker in slot_gpus:
            pool = "gpu" if (slot_gpus[worker] or 0) > 0 else "cpu"
        else:
            pool = "gpu" if (settings or {}).get("gpu") else "cpu"
        hours = (
            float(seconds) if seconds is not None else (utc(ended) - utc(started)).total_seconds() if ended else 0.0
        ) / 3600.0
        tally = out[pool]
        if status == "failed":
            tally["failed"] += 1
            if fault == "node":
                tally["node_failed"] += 1
                tally["platform_hours"] += hours
        else:
            tally["lost"] += 1
            tally["platform_hours"] += hours
            tally["unbilled_hours"] += hours
    return out


def _library(session: Session, start: datetime, end: datetime) -> LibraryReuse:
    live = len(
        list(
            session.scalars(
                select(LibraryAsset.id).where(LibraryAsset.created_at < end, LibraryAsset.retracted_at.is_(None))
            )
        )
    )
    rows = session.execute(
        select(LibraryUse.asset_id, LibraryUse.company_id, LibraryUse.used_at, LibraryUse.size, LibraryAsset.company_id)
        .join(LibraryAsset, LibraryAsset.id == LibraryUse.asset_id)
        .where(LibraryUse.used_at < end)
        .order_by(LibraryUse.used_at)
    ).all()
    seen: set[tuple[str, str]] = set()
    uses = uploads = avoided = 0
    for asset_id, company_id, used_at, size, publisher in rows:
        pair = (str(asset_id), str(company_id))
        in_month = utc(used_at) >= start
        uses += in_month
        if company_id != publisher and pair not in seen:
            seen.add(pair)
            if in_month:
                uploads += 1
                avoided += int(size)
    return LibraryReuse(assets_live=live, uses=uses, uploads_avoided=uploads, bytes_avoided=avoided)


def build(session: Session, who: Principal, month: str, currency: str = DEFAULT_CURRENCY) -> OperatorReport:
    """The report for ``month`` (``YYYY-MM``); platform admins only."""
    require(who, Role.PLATFORM_ADMIN, "the operator's report")
    start, end = month_bounds(month)
    companies = {c.id: c for c in session.scalars(select(Company))}
    capacity: dict[str, float] = defaultdict(float)
    for resource, count, seconds in session.execute(
        select(UsageEntry.resource, UsageEntry.count, UsageEntry.seconds).where(
            UsageEntry.resource.in_(list(CAPACITY.values())),
            UsageEntry.started_at >= start,
            UsageEntry.started_at < end,
        )
    ):
        capacity[str(resource)] += float(count) * float(seconds) / 3600.0
    attempts = _attempts(session, start, end)
    waits = _waits(session, attempts)
    troubles = _troubles(session, start, end)
    pools = []
    for pool in POOLS:
        mine = [a for a in attempts if _pool(a) == pool]
        used = sum(a.seconds for a in mine) / 3600.0
        cap = capacity[CAPACITY[pool]]
        per_company: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for att in mine:
            owner = companies.get(att.company_id)
            rates = (owner.rates or {}) if owner is not None else {}
            entry = per_company[owner.name if owner is not None else att.company_id]
            entry[0] += att.seconds / 3600.0
            entry[1] += sum(rs / 3600.0 * float(rates.get(r, 0.0)) for r, rs in att.resources.items())
        wait = [waits[(a.task_id, a.number)] for a in mine if (a.task_id, a.number) in waits]
        trouble = troubles[pool]
        pools.append(
            PoolReport(
                pool=pool,
                capacity_slot_hours=round(cap, 6),
                used_slot_hours=round(used, 6),
                utilisation=round(used / cap, 6) if cap > 0 else 0.0,
                idle_hours=round(max(cap - used, 0.0), 6),
                queue_wait_p50_s=percentile(wait, 50),
                queue_wait_p95_s=percentile(wait, 95),
                attempts=len(mine) + int(trouble["lost"]),
                failed_attempts=int(trouble["failed"]),
                node_failed_attempts=int(trouble["node_failed"]),
                lost_attempts=int(trouble["lost"]),
                platform_slot_hours=round(trouble["platform_hours"], 6),
                unbilled_slot_hours=round(trouble["unbilled_hours"], 6),
                cost_recovered=round(sum(v[1] for v in per_company.values()), 6),
                companies=[
                    PoolCompany(
                        company=name,
                        slot_hours=round(h, 6),
                        share=round(h / used, 6) if used else 0.0,
                        cost=round(c, 6),
                    )
                    for name, (h, c) in sorted(per_company.items())
                ],
            )
        )
    return OperatorReport(month=month, currency=currency, pools=pools, library=_library(session, start, end))


# ---- output ----------------------------------------------------------------------------------------------------
CSV_COLUMNS = [
    "pool",
    "capacity_slot_hours",
    "used_slot_hours",
    "utilisation",
    "idle_hours",
    "queue_wait_p50_s",
    "queue_wait_p95_s",
    "attempts",
    "failed_attempts",
    "node_failed_attempts",
    "lost_attempts",
    "platform_slot_hours",
    "unbilled_slot_hours",
    "cost_recovered",
]


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def to_csv(report: OperatorReport) -> str:
    """One line per pool, then one per (pool, company) share, then the library's reuse."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["month", *CSV_COLUMNS])
    for pool in report.pools:
        writer.writerow([report.month, *(_cell(getattr(pool, c)) for c in CSV_COLUMNS)])
    writer.writerow([])
    writer.writerow(["month", "pool", "company", "slot_hours", "share", "cost"])
    for pool in report.pools:
        for c in pool.companies:
            writer.writerow([report.month, pool.pool, c.company, _cell(c.slot_hours), _cell(c.share), _cell(c.cost)])
    writer.writerow([])
    writer.writerow(["month", "library_assets_live", "library_uses", "uploads_avoided", "bytes_avoided"])
    lib = report.library
    writer.writerow([report.month, lib.assets_live, lib.uses, lib.uploads_avoided, lib.bytes_avoided])
    return buffer.getvalue()


def table_rows(report: OperatorReport) -> list[tuple[list[str], list[list[str]]]]:
    """Tables for a human: pools, company shares, library reuse."""
    pools = (CSV_COLUMNS, [[_cell(getattr(p, c)) for c in CSV_COLUMNS] for p in report.pools])
    shares = (
        ["pool", "company", "slot_hours", "share", "cost"],
        [
            [p.pool, c.company, _cell(c.slot_hours), f"{c.share:.1%}", f"{c.cost:.2f}"]
            for p in report.pools
            for c in p.companies
        ],
    )
    lib = report.library
    library = (
        ["library_assets_live", "uses", "uploads_avoided", "bytes_avoided"],
        [[str(lib.assets_live), str(lib.uses), str(lib.uploads_avoided), str(lib.bytes_avoided)]],
    )
    return [pools, shares, library]
