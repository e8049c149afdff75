"""What the monitor pages show, read from the database in a few grouped queries per page (no per-row queries)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from farm.clock import utc
from farm.contract import BlockedNode, TaskOut
from farm.db.models import Blob, Company, Frame, Job, Task
from farm.domain.frames import parse_frames
from farm.domain.states import JOB_TERMINAL, JobStatus, TaskStatus
from farm.lifecycle import control
from farm.metering import ledger
from farm.services import jobs as jobops
from farm.services.auth import USAGE_ROLE, Principal, require
from storage.base import output_key

#: Jobs per page of the jobs list.
PAGE_SIZE = 50
#: Jobs with more frames than this show only their latest stored frames in the grid, not a tile per frame.
GRID_MAX = 300


@dataclass(frozen=True)
class JobRow:
    """One job with its progress, as the jobs list and the job page show it."""

    id: str
    name: str
    company: str
    company_id: str
    status: JobStatus
    status_reason: str
    frames: str
    frames_done: int
    frames_total: int
    tasks_done: int
    tasks_total: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    elapsed_s: float | None
    eta_s: float | None

    @property
    def fraction(self) -> float:
        return self.frames_done / self.frames_total if self.frames_total else 0.0

    @property
    def terminal(self) -> bool:
        return self.status in JOB_TERMINAL


def _row(job: Job, company: str, frames_done: int, tasks_done: int, tasks_total: int, now: datetime) -> JobRow:
    started = utc(job.started_at) if job.started_at else None
    finished = utc(job.finished_at) if job.finished_at else None
    elapsed = ((finished or now) - started).total_seconds() if started else None
    eta = None
    status = JobStatus(job.status)
    if elapsed is not None and finished is None and 0 < frames_done < job.frames_total and status not in JOB_TERMINAL:
        # Frames so far set the pace; good enough for chunks of similar frames, which is the common case.
        eta = elapsed / frames_done * (job.frames_total - frames_done)
    return JobRow(
        id=job.id,
        name=job.name,
        company=company,
        company_id=job.company_id,
        status=status,
        status_reason=job.status_reason,
        frames=job.frames,
        frames_done=frames_done,
        frames_total=job.frames_total,
        tasks_done=tasks_done,
        tasks_total=tasks_total,
        created_at=utc(job.created_at),
        started_at=started,
        finished_at=finished,
        elapsed_s=max(0.0, elapsed) if elapsed is not None else None,
        eta_s=eta,
    )


def _rows(session: Session, found: list[tuple[Job, str]], now: datetime) -> list[JobRow]:
    ids = [job.id for job, _ in found]
    if not ids:
        return []
    frames_done = dict(
        session.execute(select(Frame.job_id, func.count()).where(Frame.job_id.in_(ids)).group_by(Frame.job_id)).all()
    )
    tasks_total: dict[str, int] = {}
    tasks_done: dict[str, int] = {}
    for job_id, status, count in session.execute(
        select(Task.job_id, Task.status, func.count()).where(Task.job_id.in_(ids)).group_by(Task.job_id, Task.status)
    ):
        tasks_total[job_id] = tasks_total.get(job_id, 0) + int(count)
        if status == TaskStatus.COMPLETED.value:
            tasks_done[job_id] = tasks_done.get(job_id, 0) + int(count)
    return [
        _row(job, company, int(frames_done.get(job.id, 0)), tasks_done.get(job.id, 0), tasks_total.get(job.id, 0), now)
        for job, company in found
    ]


def job_page(
    session: Session, who: Principal, status: JobStatus | None, page: int, now: datetime, size: int = PAGE_SIZE
) -> tuple[list[JobRow], int]:
    """One page of the caller's jobs, newest first, and how many jobs match in all."""
    query = select(Job, Company.name).join(Company, Company.id == Job.company_id)
    count = select(func.count()).select_from(Job)
    if not who.is_platform_admin:
        query = query.where(Job.company_id == who.company_id)
        count = count.where(Job.company_id == who.company_id)
    if status is not None:
        query = query.where(Job.status == status.value)
        count = count.where(Job.status == status.value)
    query = query.order_by(Job.created_at.desc(), Job.id).limit(size).offset(max(0, page - 1) * size)
    found = [(job, str(name)) for job, name in session.execute(query).all()]
    return _rows(session, found, now), int(session.scalar(count) or 0)


def job_rows(session: Session, who: Principal, ids: list[str], now: datetime) -> list[JobRow]:
    """The named jobs the caller may see (others are silently left out)."""
    query = select(Job, Company.name).join(Company, Company.id == Job.company_id).where(Job.id.in_(ids[:200]))
    if not who.is_platform_admin:
        query = query.where(Job.company_id == who.company_id)
    return _rows(session, [(job, str(name)) for job, name in session.execute(query).all()], now)


@dataclass(frozen=True)
class FrameTile:
    """One tile of the frame grid: a stored frame (with its thumbnail's version) or a frame still to come."""

    frame: int
    name: str = ""
    version: str = ""

    @property
    def done(self) -> bool:
        return bool(self.version)


@dataclass(frozen=True)
class LogBlock:
    """One attempt's part of the log."""

    key: str
    title: str
    text: str


@dataclass
class JobDetail:
    """Everything the job page shows."""

    job: JobRow
    tasks: list[TaskOut]
    tiles: list[FrameTile]
    grid_truncated: bool
    log: list[LogBlock]
    preview_key: str
    settings: dict[str, object] = field(default_factory=dict)
    #: Nodes that failed chunks of the job, blocked ones first (``blocked`` ones get no more of its chunks).
    blocklist: list[BlockedNode] = field(default_factory=list)


def job_detail(session: Session, who: Principal, job_id: str, now: datetime) -> JobDetail:
    """The job page's data; ``NotFound`` for a job the caller may not see."""
    job = jobops.get_job(session, who, job_id)
    company = session.get(Company, job.company_id)
    row = _rows(session, [(job, company.name if company else "")], now)[0]
    tasks = jobops.tasks_out(session, job)
    stored = {
        int(frame): (str(name), str(sha)[:12])
        for frame, name, sha in session.execute(
            select(Frame.frame, Frame.name, Frame.sha256).where(Frame.job_id == job.id).order_by(Frame.frame)
        )
    }
    truncated = job.frames_total > GRID_MAX
    if truncated:
        latest = sorted(stored)[-GRID_MAX:]
        tiles = [FrameTile(f, *stored[f]) for f in latest]
    else:
        tiles = [FrameTile(f, *stored[f]) if f in stored else FrameTile(f) for f in parse_frames(job.frames)]
    return JobDetail(
        job=row,
        tasks=tasks,
        tiles=tiles,
        grid_truncated=truncated,
        log=log_blocks(tasks),
        preview_key=output_key(job.company_id, job.id, "preview.mp4"),
        settings=dict(job.settings),
        blocklist=control.blocklist_out(session, job).nodes,
    )


def log_blocks(tasks: list[TaskOut]) -> list[LogBlock]:
    """The log as one block per attempt, in chunk order (what ``farm logs`` prints, split for live updates)."""
    blocks = []
    for task in tasks:
        for attempt in task.attempts:
            title = (
                f"chunk {task.index} (frames {task.frames}) · attempt {attempt.number} · {attempt.node or '?'}"
                f" · {attempt.status}" + (f" · {attempt.reason}" if attempt.reason else "")
            )
            blocks.append(LogBlock(key=f"{task.index}-{attempt.number}", title=title, text=attempt.log_tail))
    return blocks


@dataclass(frozen=True)
class CompanyUsage:
    """One company's month: resource-hours, stored bytes, cost (None when it has no rate card)."""

    company: str
    gpu_hours: float
    cpu_hours: float
    storage_bytes: int
    cost: float | None


def usage(session: Session, who: Principal, month: str) -> list[CompanyUsage]:
    """This month's use per company from the ledger; a platform admin sees every company, a company admin their
    own, an artist none (``Forbidden``: the API's rule, ``Principal.reads_usage``)."""
    require(who, USAGE_ROLE, "reading usage")
    scope = None if who.is_platform_admin else who.company_id
    hours: dict[str, dict[str, float]] = {}
    for total in ledger.totals(session, scope, month, False):
        hours.setdefault(total.company, {})[total.resource] = total.resource_seconds / 3600
    companies = session.scalars(
        select(Company).order_by(Company.name) if scope is None else select(Company).where(Company.id == scope)
    ).all()
    blob_bytes = dict(session.execute(select(Blob.company_id, func.sum(Blob.size)).group_by(Blob.company_id)).all())
    frame_bytes = dict(
        session.execute(
            select(Job.company_id, func.sum(Frame.size)).join(Job, Job.id == Frame.job_id).group_by(Job.company_id)
        ).all()
    )
    out = []
    for company in companies:
        used = hours.get(company.name, {})
        rates = getattr(company, "rates", None)  # the rate card comes with company settings, when present
        cost = (
            sum(float(rates.get(resource, 0.0)) * h for resource, h in used.items())
            if isinstance(rates, dict) and rates
            else None
        )
        out.append(
            CompanyUsage(
                company=company.name,
                gpu_hours=used.get("gpu", 0.0),
                cpu_hours=used.get("cpu", 0.0),
                storage_bytes=int(blob_bytes.get(company.id) or 0) + int(frame_bytes.get(company.id) or 0),
                cost=cost,
            )
        )
    if scope is None:
        # Companies with usage but nothing else first-class still appear; idle companies stay at the end.
        out.sort(key=lambda c: (-(c.gpu_hours + c.cpu_hours), c.company))
    return out
