"""What the monitor pages show, read from the database in a few grouped queries per page (no per-row queries)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from farm.clock import utc
from farm.contract import BlockedNode, JobSettings, TaskOut
from farm.db.models import Blob, Company, Frame, Job, JobProduct, Task, TaskAttempt
from farm.domain import reasons
from farm.domain.frames import parse_frames
from farm.domain.states import JOB_TERMINAL, JobStatus, TaskStatus
from farm.lifecycle import control
from farm.metering import ledger, money
from farm.metering.money import DEFAULT_CURRENCY
from farm.services import jobs as jobops
from farm.services.auth import USAGE_ROLE, Principal, require
from storage.base import output_key
from web.i18n import Translator, catalogue

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
    priority: int = 50
    chunk_size: int = 1
    settings: JobSettings = field(default_factory=JobSettings)
    tasks_failed: int = 0
    #: The status reason's code and parameters (``farm.domain.reasons``; "" for a reason stored as plain text).
    reason_code: str = ""
    reason_params: dict[str, Any] | None = None
    #: The token's user (or the token's name) that submitted the job; "" for jobs from before it was recorded.
    submitted_by: str = ""

    @property
    def fraction(self) -> float:
        return self.frames_done / self.frames_total if self.frames_total else 0.0

    @property
    def terminal(self) -> bool:
        return self.status in JOB_TERMINAL


def running_seconds(intervals: list[tuple[datetime, datetime | None]], until: datetime) -> float:
    """Seconds up to ``until`` during which at least one of the attempts ran (open attempts run until ``until``):
    the time a job sat queued, paused or canceled between its attempts does not count."""
    total = 0.0
    end_so_far: datetime | None = None
    for started, ended in sorted((utc(a), utc(b) if b else until) for a, b in intervals):
        started, ended = min(started, until), min(ended, until)
        if end_so_far is not None and started < end_so_far:
            started = end_so_far
        if ended > started:
            total += (ended - started).total_seconds()
            end_so_far = ended
        elif end_so_far is None or ended > end_so_far:
            end_so_far = max(end_so_far or ended, ended)
    return total


#: Jobs with more attempts than this count their running time from first start to last end (pauses included).
MAX_INTERVALS = 5000
#: How many of the latest frames set the pace of the time-left estimate.
ETA_WINDOW = 20


def eta_seconds(
    intervals: list[tuple[datetime, datetime | None]],
    recent_frames: list[datetime],
    frames_done: int,
    frames_total: int,
    now: datetime,
) -> float | None:
    """Time left from recent throughput: the latest ``ETA_WINDOW`` frames over the running time they took. Both
    count running time only, so a paused job's estimate stays where it was instead of growing."""
    left = frames_total - frames_done
    if frames_done <= 0 or left <= 0 or not intervals:
        return None
    latest = sorted((utc(f) for f in recent_frames), reverse=True)
    ran = running_seconds(intervals, now)
    if len(latest) > ETA_WINDOW:
        window = ETA_WINDOW
        ran -= running_seconds(intervals, latest[ETA_WINDOW])
    else:
        window = frames_done
    if ran <= 0:
        return None
    return left * ran / window


def _row(
    job: Job,
    company: str,
    frames_done: int,
    tasks: dict[str, int],
    intervals: list[tuple[datetime, datetime | None]],
    recent: list[datetime],
    now: datetime,
) -> JobRow:
    started = utc(job.started_at) if job.started_at else None
    finished = utc(job.finished_at) if job.finished_at else None
    status = JobStatus(job.status)
    until = finished if finished and status in JOB_TERMINAL else now
    elapsed = running_seconds(intervals, until) if intervals else None
    eta = None
    if status not in JOB_TERMINAL:
        eta = eta_seconds(intervals, recent, frames_done, job.frames_total, now)
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
        tasks_done=tasks.get(TaskStatus.COMPLETED.value, 0),
        tasks_total=sum(tasks.values()),
        created_at=utc(job.created_at),
        started_at=started,
        finished_at=finished,
        elapsed_s=elapsed,
        eta_s=eta,
        priority=job.priority,
        chunk_size=job.chunk_size,
        settings=JobSettings.of(job.settings),
        tasks_failed=tasks.get(TaskStatus.FAILED.value, 0),
        reason_code=job.status_reason_code,
        reason_params=job.status_reason_params,
        submitted_by=job.submitted_by,
    )


def _rows(session: Session, found: list[tuple[Job, str]], now: datetime) -> list[JobRow]:
    ids = [job.id for job, _ in found]
    if not ids:
        return []
    frames_done = dict(
        session.execute(select(Frame.job_id, func.count()).where(Frame.job_id.in_(ids)).group_by(Frame.job_id)).all()
    )
    tasks: dict[str, dict[str, int]] = {}
    for job_id, status, count in session.execute(
        select(Task.job_id, Task.status, func.count()).where(Task.job_id.in_(ids)).group_by(Task.job_id, Task.status)
    ):
        key = status.value if isinstance(status, TaskStatus) else str(status)
        tasks.setdefault(job_id, {})[key] = int(count)
    intervals: dict[str, list[tuple[datetime, datetime | None]]] = {}
    attempts = select(Task.job_id, TaskAttempt.started_at, TaskAttempt.ended_at).join(
        Task, Task.id == TaskAttempt.task_id
    )
    span = select(
        Task.job_id,
        func.count(),
        func.min(TaskAttempt.started_at),
        func.max(TaskAttempt.ended_at),
        func.count(TaskAttempt.ended_at),
    ).join(Task, Task.id == TaskAttempt.task_id)
    small = []
    for job_id, count, first, last, closed in session.execute(span.where(Task.job_id.in_(ids)).group_by(Task.job_id)):
        if count <= MAX_INTERVALS:
            small.append(job_id)
        else:  # a huge job: one interval from its first start, open while any attempt is (polled twice a second)
            intervals[job_id] = [(first, last if closed == count else None)]
    for job_id, started, ended in session.execute(attempts.where(Task.job_id.in_(small))) if small else ():
        intervals.setdefault(job_id, []).append((started, ended))
    recent: dict[str, list[datetime]] = {}
    for job, _ in found:
        if JobStatus(job.status) not in JOB_TERMINAL and frames_done.get(job.id):
            recent[job.id] = list(
                session.scalars(
                    select(Frame.created_at)
                    .where(Frame.job_id == job.id)
                    .order_by(Frame.created_at.desc())
                    .limit(ETA_WINDOW + 1)
                )
            )
    return [
        _row(
            job,
            company,
            int(frames_done.get(job.id, 0)),
            tasks.get(job.id, {}),
            intervals.get(job.id, []),
            recent.get(job.id, []),
            now,
        )
        for job, company in found
    ]


#: The jobs list's sortable columns → what they sort by.
SORTS = {
    "submitted": Job.created_at,
    "name": Job.name,
    "status": Job.status,
    "priority": Job.priority,
    "frames": Job.frames_total,
    "submitter": Job.submitted_by,
}


@dataclass(frozen=True)
class ListQuery:
    """What the jobs list shows: status filter, search (name, id or submitter), sort column and direction, page."""

    status: JobStatus | None = None
    search: str = ""
    sort: str = "submitted"
    descending: bool = True
    page: int = 1

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> ListQuery:
        """From the list's query string; unknown values fall back to the defaults (a stale link still works)."""
        status = params.get("status") or ""
        sort = params.get("sort") or "submitted"
        try:
            page = max(1, min(1_000_000, int(params.get("page") or 1)))
        except ValueError:
            page = 1
        return cls(
            status=JobStatus(status) if status in {s.value for s in JobStatus} else None,
            search=(params.get("q") or "").strip()[:200],
            sort=sort if sort in SORTS else "submitted",
            descending=(params.get("dir") or ("desc" if sort == "submitted" else "asc")) != "asc",
            page=page,
        )

    def params(self, **changes: object) -> dict[str, str]:
        """The query string's fields for this list, with ``changes`` (e.g. ``page=2``); defaults left out."""
        values: dict[str, object] = {
            "status": self.status.value if self.status else "",
            "q": self.search,
            "sort": self.sort if self.sort != "submitted" else "",
            "dir": "" if self.descending == (self.sort == "submitted") else ("desc" if self.descending else "asc"),
            "page": self.page if self.page > 1 else "",
        }
        values.update(changes)
        return {k: str(v) for k, v in values.items() if v not in ("", None, 1)}

    def encode(self, **changes: object) -> str:
        """The query string (without ``?``), canonical: the same list always gives the same string."""
        return urlencode(self.params(**changes))


def job_page(
    session: Session, who: Principal, query: ListQuery, now: datetime, size: int = PAGE_SIZE
) -> tuple[list[JobRow], int]:
    """One page of the caller's jobs in the query's order, and how many jobs match in all."""
    rows = select(Job, Company.name).join(Company, Company.id == Job.company_id)
    count = select(func.count()).select_from(Job)
    conditions = []
    if not who.is_platform_admin:
        conditions.append(Job.company_id == who.company_id)
    if query.status is not None:
        conditions.append(Job.status == query.status.value)
    if query.search:
        pattern = "%" + query.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conditions.append(
            or_(
                Job.name.ilike(pattern, escape="\\"),
                Job.id.ilike(pattern, escape="\\"),
                Job.submitted_by.ilike(pattern, escape="\\"),
            )
        )
    rows, count = rows.where(*conditions), count.where(*conditions)
    column = SORTS[query.sort]
    order = column.desc() if query.descending else column.asc()
    tie = Job.created_at.desc() if query.sort != "submitted" else Job.id
    rows = rows.order_by(order, tie, Job.id).limit(size).offset(max(0, query.page - 1) * size)
    found = [(job, str(name)) for job, name in session.execute(rows).all()]
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
    #: What the job cost so far at its company's rate card (None: no rate card, or the viewer may not see costs).
    cost: float | None = None
    currency: str = DEFAULT_CURRENCY


def job_detail(
    session: Session,
    who: Principal,
    job_id: str,
    now: datetime,
    t: Translator | None = None,
    currency: str = DEFAULT_CURRENCY,
) -> JobDetail:
    """The job page's data (reasons and log titles in ``t``'s language, the cost in ``currency`` for those who may
    read costs); ``NotFound`` for a job the caller may not see."""
    job = jobops.get_job(session, who, job_id)
    company = session.get(Company, job.company_id)
    row = _rows(session, [(job, company.name if company else "")], now)[0]
    tasks = jobops.tasks_out(session, job)
    if t is not None:
        tasks = translated_attempts(session, job, tasks, t)
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
        log=log_blocks(tasks, t),
        preview_key=output_key(job.company_id, job.id, "preview.mp4"),
        settings=dict(job.settings),
        blocklist=[
            n.model_copy(update={"reason": reason_text(t, n.reason, n.reason_code, n.reason_params)}) if t else n
            for n in control.blocklist_out(session, job).nodes
        ],
        cost=money.job_cost(session, job) if who.reads_usage else None,
        currency=currency,
    )


def reason_text(t: Translator, text: str, code: str, params: Mapping[str, object] | None) -> str:
    """A stored reason in ``t``'s language: its code's message with the parameters filled in (nested reasons in
    the same language; text that is not ours, such as Blender's words, as it is); the stored text when the code is
    unknown to this catalogue (a reason written as plain text, or by a newer version)."""
    if not code or code not in reasons.CATALOGUE or f"reason.{code}" not in catalogue():
        return text

    def template(nested: str) -> str:
        return t(f"reason.{nested}") if f"reason.{nested}" in catalogue() else reasons.english(nested)

    return reasons.render(code, params or {}, template)


def product_reason(session: Session, t: Translator, job_id: str) -> str:
    """Why the job's video failed, in ``t``'s language (issue 16); "" when it has no failed video."""
    row = session.get(JobProduct, job_id)
    return reason_text(t, row.reason, row.reason_code, row.reason_params) if row is not None and row.reason else ""


def reason_severity(code: str, fallback: str) -> str:
    """``info``, ``warning`` or ``error`` for a reason's code; ``fallback`` for a reason stored as plain text."""
    return reasons.severity(code) if code in reasons.CATALOGUE else fallback


def translated_attempts(session: Session, job: Job, tasks: list[TaskOut], t: Translator) -> list[TaskOut]:
    """The job's chunks with each coded attempt reason in ``t``'s language (copies: the API's stay English)."""
    coded = {
        (int(index), int(number)): (str(reason), str(code), params)
        for index, number, reason, code, params in session.execute(
            select(
                Task.index, TaskAttempt.number, TaskAttempt.reason, TaskAttempt.reason_code, TaskAttempt.reason_params
            )
            .join(Task, Task.id == TaskAttempt.task_id)
            .where(Task.job_id == job.id, TaskAttempt.reason_code != "")
        )
    }
    if not coded:
        return tasks
    out = []
    for task in tasks:
        attempts = [
            a.model_copy(update={"reason": reason_text(t, *coded[(task.index, a.number)])})
            if (task.index, a.number) in coded
            else a
            for a in task.attempts
        ]
        out.append(task.model_copy(update={"attempts": attempts}))
    return out


def log_blocks(tasks: list[TaskOut], t: Translator | None = None) -> list[LogBlock]:
    """The log as one block per attempt, in chunk order (what ``farm logs`` prints, split for live updates); titles
    in ``t``'s language, else English. A canceled attempt's reason (the kill's exit status) is left out: a cancel
    is not a crash."""
    blocks = []
    for task in tasks:
        for attempt in task.attempts:
            reason = attempt.reason if attempt.reason and attempt.status != "canceled" else ""
            if t is None:
                title = f"chunk {task.index} (frames {task.frames}) · attempt {attempt.number} · {attempt.node or '?'}"
                title += f" · {attempt.status}" + (f" · {reason}" if reason else "")
            else:
                status = t("status." + attempt.status) if "status." + attempt.status in catalogue() else attempt.status
                title = t(
                    "job.log_block",
                    chunk=t.number(task.index),
                    frames=task.frames,
                    attempt=t.number(attempt.number),
                    node=attempt.node or "?",
                    status=status,
                ) + (f" · {reason}" if reason else "")
            blocks.append(LogBlock(key=f"{task.index}-{attempt.number}", title=title, text=attempt.log_tail))
    return blocks


#: Decimals to show a cost with (``farm.metering.money``): never 0.00 for a cost that is not zero.
cost_digits = money.cost_digits


@dataclass(frozen=True)
class CompanyUsage:
    """One company's month: resource-hours, stored bytes, cost (None when it has no rate card)."""

    company: str
    gpu_hours: float
    cpu_hours: float
    storage_bytes: int
    cost: float | None
    currency: str = DEFAULT_CURRENCY


def usage(session: Session, who: Principal, month: str, currency: str = DEFAULT_CURRENCY) -> list[CompanyUsage]:
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
                currency=currency,
            )
        )
    if scope is None:
        # Companies with usage but nothing else first-class still appear; idle companies stay at the end.
        out.sort(key=lambda c: (-(c.gpu_hours + c.cpu_hours), c.company))
    return out
