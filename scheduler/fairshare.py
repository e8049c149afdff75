"""Fair share between companies: which runnable chunk gets the next free slot.

Order of preference for each free slot, decided one chunk at a time:

1. a company holding fewer slots than its guaranteed ``min_slots`` (furthest below first): guarantees are
   honoured as soon as a slot frees, without preempting anybody;
2. a company whose next chunk has waited longer than ``starvation_s`` (nothing starves, whatever the shares);
3. the company furthest below its share: lowest slot-seconds used over the sliding window divided by its
   ``cpu_share`` (CPU slots) or ``gpu_share`` (GPU slots); running attempts count up to now.

Always: a company never has more than ``max_slots`` chunks in flight (the burst cap; a bundle's chunks count one
by one); a job whose company spent its monthly budget for the resource it needs is held with a visible ``quota
exceeded: …`` reason (``farm.metering.quota``).
Within a company: job priority (higher first), then age, then chunk index.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from farm.clock import utc
from farm.contract import JobSettings
from farm.db.models import Company, Job, Task, TaskAttempt
from farm.domain.states import JOB_DISPATCHABLE, TASK_RUNNABLE
from farm.lifecycle import dependencies
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
        running: dict[str, tuple[str, str, float]] | None = None,
    ) -> None:
        self.states = states
        self.now = now
        self.starvation_s = starvation_s
        self.gpu_slots_exist = gpu_slots_exist
        self.month_hours = month_hours
        self.month = quota.month_of(now)
        self.held: dict[str, str] = {}
        self.running = running if running is not None else {}

    def _pool(self, job: Job) -> str:
        return "gpu" if JobSettings.of(job.settings).gpu and self.gpu_slots_exist else "cpu"

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

    def more_of(self, job: Job, count: int) -> list[Task]:
        """Up to ``count`` further candidates of ``job`` (the chunks that follow the one just taken, in order), for a
        bundle (``scheduler.bundles``). A company with a burst cap counts every chunk in flight against it, so a
        bundle never takes it past ``max_slots`` chunks."""
        st = self.states[job.company_id]
        if st.company.max_slots is not None:
            count = min(count, st.company.max_slots - st.running - 1)
        out: list[Task] = []
        while st.candidates and len(out) < count and st.candidates[0][1].id == job.id:
            out.append(st.candidates.popleft()[0])
        return out

    def taken(self, job: Job, slot: Slot, chunks: int = 1) -> None:
        """The last candidate got ``slot`` (with ``chunks - 1`` more of its job, a bundle): count it against its
        company for the rest of the round."""
        st = self.states[job.company_id]
        st.running += chunks
        st.used[slot_pool(slot)] += st.estimate
        self.running[slot.name] = (job.company_id, slot_pool(slot), self.now.timestamp())
        quota.release(job)


class UsageWindow:
    """Slot-seconds each company used per pool over the sliding window, kept up to date as attempts end, so a
    dispatch round does not re-read the window's attempts (their number grows with the farm's throughput).

    An attempt counts whole once it ended inside the window (one that began before the window's start counts
    whole too: chunks are short next to the window, and the policy only compares companies).
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.loaded = False
        self._ended: deque[tuple[float, str, str, float]] = deque()  # (ended, company, pool, seconds)
        self._used: dict[tuple[str, str], float] = {}
        self._durations: dict[str, tuple[float, int]] = {}

    def load(self, session: Session, now: datetime) -> None:
        """Read the window once (at the first round after a start)."""
        start = now - timedelta(seconds=self.window_s)
        rows = session.execute(
            select(Job.company_id, TaskAttempt.worker, TaskAttempt.started_at, TaskAttempt.ended_at)
            .join(Task, Task.id == TaskAttempt.task_id)
            .join(Job, Job.id == Task.job_id)
            .where(TaskAttempt.ended_at >= start)
            .order_by(TaskAttempt.ended_at)
        ).all()
        for company_id, worker, started_at, ended_at in rows:
            if ended_at is None:
                continue
            pool = "gpu" if "gpu" in str(worker).rsplit("/", 1)[-1] else "cpu"
            began, ended = utc(started_at).timestamp(), utc(ended_at).timestamp()
            self.add(str(company_id), pool, began, ended)
        self.loaded = True

    def add(self, company_id: str, pool: str, started: float, ended: float) -> None:
        seconds = max(0.0, ended - started)
        self._ended.append((ended, company_id, pool, seconds))
        self._used[(company_id, pool)] = self._used.get((company_id, pool), 0.0) + seconds
        total, count = self._durations.get(company_id, (0.0, 0))
        self._durations[company_id] = (total + seconds, count + 1)

    def expire(self, now: float) -> None:
        start = now - self.window_s
        while self._ended and self._ended[0][0] < start:
            _ended, company_id, pool, seconds = self._ended.popleft()
            self._used[(company_id, pool)] -= seconds
            total, count = self._durations[company_id]
            self._durations[company_id] = (total - seconds, count - 1)

    def used(self, company_id: str, pool: str) -> float:
        return max(0.0, self._used.get((company_id, pool), 0.0))

    def estimate(self, company_id: str) -> float:
        """Mean chunk duration of the company in the window."""
        total, count = self._durations.get(company_id, (0.0, 0))
        return total / count if count > 0 and total > 0 else DEFAULT_CHUNK_ESTIMATE_S


class FairShare:
    """The ordering policy of the dispatcher. What it remembers between rounds (slot time used over the window,
    when each running attempt began) is derived from the database at start and kept up to date after."""

    def __init__(self, window_s: float = 3600.0, starvation_s: float = 600.0) -> None:
        self.window_s = window_s
        self.starvation_s = starvation_s
        self.window = UsageWindow(window_s)
        self._running: dict[str, tuple[str, str, float]] = {}  # slot -> (company, pool, started)
        self.gate = dependencies.FrameGate()  # issue 19: chunks of --frame-match jobs wait for upstream frames

    def attempt_ended(self, slot: Slot, started: float, ended: float) -> None:
        """An attempt on ``slot`` ended: its slot time moves from running to used."""
        # Not forgotten here: a bundle's chunks end one after another on the same slot; the next round forgets a
        # slot that is free (``_account``) and ``taken`` replaces it.
        held = self._running.get(slot.name)
        if held is not None:
            company_id, pool, _ = held
            self.window.add(company_id, pool, started, ended)

    def round(
        self,
        session: Session,
        slots: Sequence[Slot],
        idle: Sequence[Slot],
        now: datetime,
        refresh_waits: bool = True,
        bundle: Callable[[Job], int] | None = None,
    ) -> DispatchRound:
        """Everything one dispatch round needs, read in the dispatcher's session. ``refresh_waits``: first let jobs
        whose upstream jobs finished stop waiting (the dispatcher skips it in passes where no job ended).
        ``bundle``: how many chunks of a job one slot may take at once (more candidates are read for it)."""
        per_company = len(idle) * 2 + 4
        if refresh_waits:
            dependencies.refresh(session)  # issue 19 (one indexed read)
        # Jobs first (few rows, by their counters), then each job's first runnable chunks by index: the cost does
        # not grow with the number of chunks a job has.
        jobs = list(
            session.scalars(
                select(Job)
                .where(
                    Job.status.in_(list(JOB_DISPATCHABLE)),
                    Job.tasks_runnable > 0,
                    Job.wait != dependencies.WAIT_JOB,
                )
                .order_by(Job.priority.desc(), Job.created_at, Job.id)
            )
        )
        by_company: dict[str, list[Job]] = {}
        for job in jobs:
            by_company.setdefault(job.company_id, []).append(job)
        states: dict[str, CompanyState] = {}
        for company in session.scalars(select(Company).where(Company.id.in_(list(by_company)))):
            st = CompanyState(company=company)
            for job in by_company[company.id]:
                more = len(idle) * (bundle(job) - 1) if bundle is not None else 0
                wanted = per_company + more - len(st.candidates)
                if wanted <= 0:
                    break
                tasks = list(
                    session.scalars(
                        select(Task)
                        .where(Task.job_id == job.id, Task.status.in_(list(TASK_RUNNABLE)))
                        .order_by(Task.index)
                        .limit(wanted)
                    )
                )
                if job.wait == dependencies.WAIT_FRAMES:
                    tasks = self.gate.ready_tasks(session, job, tasks)
                st.candidates.extend((task, job) for task in tasks)
            states[company.id] = st
        if states:
            self._account(session, states, slots, now)
        budgeted = [
            cid
            for cid, st in states.items()
            if st.company.gpu_hours_budget is not None or st.company.cpu_hours_budget is not None
        ]
        hours = quota.month_hours(session, budgeted, quota.month_of(now))
        gpu_slots_exist = any(slot.gpus > 0 for slot in slots)
        return DispatchRound(states, now, self.starvation_s, gpu_slots_exist, hours, self._running)

    def _account(self, session: Session, states: dict[str, CompanyState], slots: Sequence[Slot], now: datetime) -> None:
        """Slots held now and slot-seconds used over the window, per company and pool."""
        if not self.window.loaded:
            self.window.load(session, now)
        stamp = now.timestamp()
        self.window.expire(stamp)
        # Chunks in flight per busy slot: a bundle's chunks all count (the burst cap is on chunks in flight).
        busy = {slot.name: max(1, len(slot.call)) for slot in slots if slot.job_id is not None}
        for name in list(self._running):
            if name not in busy:
                del self._running[name]  # the attempt ended without facts (lost worker, restart)
        for name, (company_id, pool, started) in self._running.items():
            st = states.get(company_id)
            if st is not None:
                st.running += busy[name]
                st.used[pool] += max(0.0, stamp - started)
        for company_id, st in states.items():
            for pool in ("cpu", "gpu"):
                st.used[pool] += self.window.used(company_id, pool)
            st.estimate = self.window.estimate(company_id)
