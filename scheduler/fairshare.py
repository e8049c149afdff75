"""Fair share between companies: which runnable chunk gets the next free slot.

Order of preference for each free slot, decided one chunk at a time:

1. a company holding fewer slots than its guaranteed ``min_slots`` (furthest below first): guarantees are
   honoured as soon as a slot frees, without preempting anybody;
2. a company whose next chunk has waited longer than ``starvation_s`` (nothing starves, whatever the shares);
3. the company furthest below its share: lowest slot-seconds used over the sliding window divided by its
   ``cpu_share`` (CPU slots) or ``gpu_share`` (GPU slots); running attempts count up to now.

Always: a company never holds more than ``max_slots`` (the burst cap); a job whose company spent its monthly
budget for the resource it needs is held with a visible ``quota exceeded: …`` reason (``farm.metering.quota``).
Within a company: job priority (higher first), then age, then chunk index.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from farm.clock import utc
from farm.db.models import Company, Job, Task, TaskAttempt
from farm.domain.states import JOB_DISPATCHABLE, TASK_RUNNABLE
from farm.metering import quota
from scheduler.pool import Slot

log = logging.getLogger(__name__)

DEFAULT_CHUNK_ESTIMATE_S = 1.0


def slot_pool(slot: Slot) -> str:
    """``gpu`` for a slot with a GPU, ``cpu`` otherwise: shares and budgets are kept per pool."""
    return "gpu" if slot.gpus > 0 else "cpu"


@dataclass
class CompanyState:
    """What the policy knows about one company during one dispatch round."""

    company: Company
    running: int = 0
    used: dict[str, float] = field(default_factory=lambda: {"cpu": 0.0, "gpu": 0.0})
    estimate: float = DEFAULT_CHUNK_ESTIMATE_S
    candidates: deque[tuple[Task, Job]] = field(default_factory=deque)

    @property
    def capped(self) -> bool:
        return self.company.max_slots is not None and self.running >= self.company.max_slots

    def share(self, pool: str) -> float:
        value = self.company.gpu_share if pool == "gpu" else self.company.cpu_share
        return max(float(value), 1e-9)


class DispatchRound:
    """Yields candidates best first; the dispatcher calls ``taken`` for each one it hands to a slot."""

    def __init__(
        self,
        states: dict[str, CompanyState],
        now: datetime,
        starvation_s: float,
        gpu_slots_exist: bool,
        month_hours: dict[tuple[str, str], float],
    ) -> None:
        self.states = states
        self.now = now
        self.starvation_s = starvation_s
        self.gpu_slots_exist = gpu_slots_exist
        self.month_hours = month_hours
        self.month = quota.month_of(now)
        self.held: dict[str, str] = {}

    def _pool(self, job: Job) -> str:
        return "gpu" if job.settings.get("gpu") and self.gpu_slots_exist else "cpu"

    def _key(self, st: CompanyState) -> tuple[float, float, float, str]:
        task, job = st.candidates[0]
        pool = self._pool(job)
        age = utc(job.created_at).timestamp()
        if st.running < st.company.min_slots:
            return (0, float(st.running - st.company.min_slots), age, st.company.name)
        waited = (self.now - utc(task.updated_at)).total_seconds()
        if waited >= self.starvation_s:
            return (1, -waited, age, st.company.name)
        return (2, st.used[pool] / st.share(pool), age, st.company.name)

    @staticmethod
    def _drop_job(st: CompanyState, job_id: str) -> None:
        st.candidates = deque((t, j) for t, j in st.candidates if j.id != job_id)

    def __iter__(self) -> Iterator[tuple[Task, Job]]:
        while True:
            live = [st for st in self.states.values() if st.candidates and not st.capped]
            if not live:
                return
            st = min(live, key=self._key)
            task, job = st.candidates.popleft()
            pool = self._pool(job)
            used = self.month_hours.get((st.company.id, pool), 0.0)
            reason = quota.over_budget(st.company, pool, used, self.month)
            if reason is not None:
                quota.hold(job, reason)
                self.held[job.id] = reason
                self._drop_job(st, job.id)
                continue
            yield task, job  # not taken: no free slot fits this chunk now (GPU, blocklist, claim); next one

    def taken(self, job: Job, slot: Slot) -> None:
        """The last candidate got ``slot``: count it against its company for the rest of the round."""
        st = self.states[job.company_id]
        st.running += 1
        st.used[slot_pool(slot)] += st.estimate
        quota.release(job)


class FairShare:
    """The ordering policy of the dispatcher; stateless between rounds (the database is the memory)."""

    def __init__(self, window_s: float = 3600.0, starvation_s: float = 600.0) -> None:
        self.window_s = window_s
        self.starvation_s = starvation_s

    def round(self, session: Session, slots: Sequence[Slot], idle: Sequence[Slot], now: datetime) -> DispatchRound:
        """Everything one dispatch round needs, read in the dispatcher's session."""
        per_company = len(idle) * 4 + 16
        company_ids = list(
            session.scalars(
                select(Job.company_id)
                .distinct()
                .join(Task, Task.job_id == Job.id)
                .where(
                    Task.status.in_([t.value for t in TASK_RUNNABLE]),
                    Job.status.in_([j.value for j in JOB_DISPATCHABLE]),
                )
            )
        )
        states: dict[str, CompanyState] = {}
        for company in session.scalars(select(Company).where(Company.id.in_(company_ids))):
            st = CompanyState(company=company)
            st.candidates.extend(
                (task, job)
                for task, job in session.execute(
                    select(Task, Job)
                    .join(Job, Job.id == Task.job_id)
                    .where(
                        Job.company_id == company.id,
                        Task.status.in_([t.value for t in TASK_RUNNABLE]),
                        Job.status.in_([j.value for j in JOB_DISPATCHABLE]),
                    )
                    .order_by(Job.priority.desc(), Job.created_at, Job.id, Task.index)
                    .limit(per_company)
                ).all()
            )
            states[company.id] = st
        if states:
            self._account(session, states, slots, now)
        budgeted = [cid for cid, st in states.items() if st.company.gpu_hours_budget is not None
                    or st.company.cpu_hours_budget is not None]
        hours = quota.month_hours(session, budgeted, quota.month_of(now))
        gpu_slots_exist = any(slot.gpus > 0 for slot in slots)
        return DispatchRound(states, now, self.starvation_s, gpu_slots_exist, hours)

    def _account(
        self, session: Session, states: dict[str, CompanyState], slots: Sequence[Slot], now: datetime
    ) -> None:
        """Slots held now and slot-seconds used over the window, per company and pool."""
        busy_jobs = {slot.job_id for slot in slots if slot.job_id is not None}
        if busy_jobs:
            owner: dict[str, str] = {
                job_id: company_id
                for job_id, company_id in session.execute(
                    select(Job.id, Job.company_id).where(Job.id.in_(busy_jobs))
                ).all()
            }
            for slot in slots:
                st = states.get(owner.get(slot.job_id or "", ""))
                if st is not None:
                    st.running += 1
        pools = {slot.name: slot_pool(slot) for slot in slots}
        start = now - timedelta(seconds=self.window_s)
        finished: dict[str, list[float]] = {}
        rows = session.execute(
            select(Job.company_id, TaskAttempt.worker, TaskAttempt.started_at, TaskAttempt.ended_at)
            .join(Task, Task.id == TaskAttempt.task_id)
            .join(Job, Job.id == Task.job_id)
            .where(Job.company_id.in_(list(states)), or_(TaskAttempt.ended_at.is_(None), TaskAttempt.ended_at >= start))
        ).all()
        for company_id, worker, started_at, ended_at in rows:
            st = states[company_id]
            began = utc(started_at)
            ended = min(utc(ended_at), now) if ended_at is not None else now
            overlap = (ended - max(began, start)).total_seconds()
            if overlap > 0:
                st.used[pools.get(worker, "cpu")] += overlap
            if ended_at is not None:
                finished.setdefault(company_id, []).append(max(0.0, (ended - began).total_seconds()))
        for company_id, durations in finished.items():
            states[company_id].estimate = sum(durations) / len(durations) or DEFAULT_CHUNK_ESTIMATE_S
