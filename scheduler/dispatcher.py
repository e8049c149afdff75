"""The dispatch loop: hands runnable chunks to idle slots, applies what workers report, carries out
cancel requests, and recovers in-flight work after a restart. Every state change goes through
``farm.transitions``; workers only report facts."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError
from sqlalchemy import select
from sqlalchemy.orm import Session

from farm import ledger
from farm.clock import Clock
from farm.db.engine import Database
from farm.db.models import Frame, Job, Task, TaskAttempt
from farm.states import JOB_DISPATCHABLE, TASK_IN_FLIGHT, TASK_RUNNABLE, JobStatus, TaskStatus
from farm.transitions import set_job_status, set_task_status, settle_job
from scheduler.pool import Slot, WorkerPool

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.2


class Dispatcher:
    """Owns the slots; runs in one thread (``run``) or step by step in tests (``step``)."""

    def __init__(self, db: Database, pool: WorkerPool, clock: Clock, interval_s: float = 0.05) -> None:
        self.db = db
        self.pool = pool
        self.clock = clock
        self.interval_s = interval_s
        self.wake = threading.Event()
        self.on_change: Callable[[], None] | None = None

    # ---- start-up ---------------------------------------------------------------------------------------
    def recover(self) -> int:
        """After a restart no chunk is in flight: put those the database thinks are back in the queue."""
        now = self.clock.now()
        count = 0
        with self.db.session() as s:
            for task in s.scalars(select(Task).where(Task.status.in_([t.value for t in TASK_IN_FLIGHT]))):
                for attempt in s.scalars(
                    select(TaskAttempt).where(TaskAttempt.task_id == task.id, TaskAttempt.ended_at.is_(None))
                ):
                    attempt.status, attempt.ended_at = "lost", now
                    attempt.reason = "the scheduler restarted while this attempt ran"
                set_task_status(task, TaskStatus.QUEUED, now, "requeued after scheduler restart")
                count += 1
            for job in s.scalars(select(Job).where(Job.status.in_(["cancel-requested", "pause-requested"]))):
                settle_job(s, job, now)
        if count:
            log.info("recovered %d in-flight chunk(s) after restart", count)
        return count

    # ---- the loop ---------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set."""
        while not stop.is_set():
            try:
                active = self.step()
            except Exception:
                log.exception("dispatcher step failed; continuing")
                active = False
                stop.wait(1.0)
            refs = self._outstanding()
            if refs and not active:
                ray.wait(refs, num_returns=1, timeout=self.interval_s)
            elif not refs and not active:
                self.wake.wait(0.5)
                self.wake.clear()

    def step(self) -> bool:
        """One pass: results, progress, requests, dispatch. True when something happened."""
        happened = self._collect()
        happened |= self._carry_out_requests()
        happened |= self._dispatch()
        self._send_polls()
        if happened and self.on_change is not None:
            self.on_change()
        return happened

    def _outstanding(self) -> list[Any]:
        refs = []
        for slot in self.pool.slots:
            if slot.render_ref is not None:
                refs.append(slot.render_ref)
            if slot.poll_ref is not None:
                refs.append(slot.poll_ref)
        return refs

    # ---- results and progress ---------------------------------------------------------------------------
    def _collect(self) -> bool:
        refs = self._outstanding()
        if not refs:
            return False
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        if not ready:
            return False
        ready_set = set(ready)
        happened = False
        for slot in list(self.pool.slots):
            if slot.poll_ref is not None and slot.poll_ref in ready_set:
                ref, slot.poll_ref = slot.poll_ref, None
                try:
                    self._apply_poll(slot, ray.get(ref))
                    happened = True
                except (RayActorError, RayTaskError):
                    pass  # the render ref reports the loss
            if slot.render_ref is not None and slot.render_ref in ready_set:
                ref = slot.render_ref
                try:
                    facts = ray.get(ref)
                except (RayActorError, RayTaskError) as exc:
                    self._worker_lost(slot, exc)
                else:
                    self._apply_facts(slot, facts)
                happened = True
        return happened

    def _apply_poll(self, slot: Slot, report: dict[str, Any]) -> None:
        slot.last_beat = float(report.get("beat", time.time()))
        if slot.task_id is None or report.get("task") not in (None, slot.task_id):
            return
        now = self.clock.now()
        with self.db.session() as s:
            task = s.get(Task, slot.task_id)
            if task is None:
                return
            if report.get("task") == slot.task_id and task.status == TaskStatus.DISPATCHED.value:
                set_task_status(task, TaskStatus.RUNNING, now, f"on {slot.name}")
            self._record_frames(s, task, report.get("events", []), now)

    def _record_frames(self, s: Session, task: Task, events: list[dict[str, Any]], now: datetime) -> None:
        for ev in events:
            if ev.get("task_id") != task.id:
                continue
            s.merge(
                Frame(
                    job_id=task.job_id,
                    frame=int(ev["frame"]),
                    task_id=task.id,
                    key=str(ev["key"]),
                    name=str(ev["name"]),
                    size=int(ev["size"]),
                    sha256=str(ev["sha256"]),
                    device=str(ev.get("device", "CPU")),
                    render_seconds=float(ev.get("seconds", 0.0)),
                    created_at=now,
                )
            )

    def _apply_facts(self, slot: Slot, facts: dict[str, Any]) -> None:
        """Decide what a finished attempt means: completed, retry, failed or canceled."""
        now = self.clock.now()
        outcome = str(facts.get("outcome", "failed"))
        with self.db.session() as s:
            task = s.get(Task, facts["task_id"])
            if task is None:
                slot.release()
                return
            job = s.get(Job, task.job_id)
            assert job is not None
            self._record_frames(s, task, facts.get("frames", []), now)
            attempt = s.scalar(
                select(TaskAttempt).where(
                    TaskAttempt.task_id == task.id, TaskAttempt.number == facts["attempt"]
                )
            )
            started = datetime.fromtimestamp(float(facts["started_at"]), UTC)
            ended = datetime.fromtimestamp(float(facts["ended_at"]), UTC)
            if attempt is not None:
                attempt.status = outcome
                attempt.started_at, attempt.ended_at = started, ended
                attempt.seconds = float(facts["seconds"])
                attempt.blender_seconds = facts.get("blender_seconds")
                attempt.exit_code = facts.get("exit_code")
                attempt.reason = str(facts.get("reason", ""))
                attempt.log_tail = str(facts.get("log_tail", ""))[-16_000:]
                attempt.node = str(facts.get("node", slot.node))
            for resource, count in dict(facts.get("resources", {})).items():
                if float(count) > 0:
                    ledger.record(
                        s,
                        ledger.Usage(
                            company_id=job.company_id,
                            job_id=job.id,
                            task_id=task.id,
                            attempt=int(facts["attempt"]),
                            node=str(facts.get("node", "")),
                            resource=str(resource),
                            count=float(count),
                            started_at=started,
                            ended_at=ended,
                            seconds=float(facts["seconds"]),
                            outcome=outcome,
                        ),
                    )
            self._settle_task(s, job, task, outcome, str(facts.get("reason", "")), now)
            settle_job(s, job, now)
        slot.release()

    def _settle_task(
        self, s: Session, job: Job, task: Task, outcome: str, reason: str, now: datetime
    ) -> None:
        status = TaskStatus(task.status)
        if status not in TASK_IN_FLIGHT:
            return
        job_status = JobStatus(job.status)
        if outcome == "completed":
            set_task_status(task, TaskStatus.COMPLETED, now)
        elif job_status is JobStatus.CANCEL_REQUESTED:
            set_task_status(task, TaskStatus.CANCELED, now, "job canceled")
        elif outcome == "canceled":
            set_task_status(task, TaskStatus.QUEUED, now, "stopped by the scheduler; requeued")
        else:
            max_attempts = int(str(job.settings.get("max_attempts", 3)))
            if task.attempts >= max_attempts:
                set_task_status(task, TaskStatus.FAILED, now, f"{task.attempts} attempt(s) failed: {reason}")
            else:
                set_task_status(task, TaskStatus.SOFT_FAILED, now, reason)

    def _worker_lost(self, slot: Slot, exc: Exception) -> None:
        """The actor died (node lost, crash): requeue its chunk at once and replace the actor."""
        now = self.clock.now()
        log.warning("worker %s lost while rendering %s: %s", slot.name, slot.task_id, exc)
        with self.db.session() as s:
            task = s.get(Task, slot.task_id) if slot.task_id else None
            if task is not None:
                attempt = s.scalar(
                    select(TaskAttempt).where(
                        TaskAttempt.task_id == task.id, TaskAttempt.number == slot.attempt
                    )
                )
                if attempt is not None:
                    attempt.status, attempt.ended_at = "lost", now
                    attempt.reason = f"worker lost: {type(exc).__name__}"
                if TaskStatus(task.status) in TASK_IN_FLIGHT:
                    job = s.get(Job, task.job_id)
                    if job is not None and job.status == JobStatus.CANCEL_REQUESTED.value:
                        set_task_status(task, TaskStatus.CANCELED, now, "job canceled")
                    else:
                        set_task_status(task, TaskStatus.QUEUED, now, "worker lost; requeued")
                    if job is not None:
                        settle_job(s, job, now)
        self.pool.replace(slot)

    def _send_polls(self) -> None:
        now = time.monotonic()
        for slot in self.pool.slots:
            if (
                slot.task_id is not None
                and slot.poll_ref is None
                and now - slot.poll_sent_at >= POLL_INTERVAL_S
            ):
                slot.poll_ref = slot.actor.poll.remote()
                slot.poll_sent_at = now

    # ---- requests -----------------------------------------------------------------------------------------
    def _carry_out_requests(self) -> bool:
        busy = {slot.task_id: slot for slot in self.pool.slots if slot.task_id is not None}
        with self.db.session() as s:
            jobs = list(s.scalars(select(Job).where(Job.status == JobStatus.CANCEL_REQUESTED.value)))
            happened = False
            for job in jobs:
                for task in s.scalars(select(Task).where(Task.job_id == job.id)):
                    slot = busy.get(task.id)
                    if slot is not None and not slot.cancel_sent:
                        slot.actor.cancel.remote(task.id)
                        slot.cancel_sent = True
                        happened = True
                if not any(slot.job_id == job.id for slot in busy.values()):
                    # No slot holds its chunks any more (e.g. dispatched before a restart): settle now.
                    for task in s.scalars(select(Task).where(Task.job_id == job.id)):
                        if TaskStatus(task.status) in TASK_IN_FLIGHT:
                            set_task_status(task, TaskStatus.CANCELED, self.clock.now(), "job canceled")
                    settle_job(s, job, self.clock.now())
                    happened = True
        return happened

    # ---- dispatch -----------------------------------------------------------------------------------------
    def _dispatch(self) -> bool:
        idle = self.pool.idle()
        if not idle:
            return False
        now = self.clock.now()
        handed: list[tuple[Slot, dict[str, Any]]] = []
        with self.db.session() as s:
            rows = s.execute(
                select(Task, Job)
                .join(Job, Job.id == Task.job_id)
                .where(
                    Task.status.in_([t.value for t in TASK_RUNNABLE]),
                    Job.status.in_([j.value for j in JOB_DISPATCHABLE]),
                )
                .order_by(Job.priority.desc(), Job.created_at, Task.index)
                .limit(len(idle) * 4 + 16)
            ).all()
            gpu_slots_exist = any(slot.gpus > 0 for slot in self.pool.slots)
            for task, job in rows:
                slot = self._pick_slot(idle, job, gpu_slots_exist)
                if slot is None:
                    continue
                idle.remove(slot)
                handed.append((slot, self._assign(s, slot, job, task, now)))
                if not idle:
                    break
        for slot, assignment in handed:
            slot.render_ref = slot.actor.render.remote(assignment)
            slot.poll_sent_at = 0.0
        return bool(handed)

    @staticmethod
    def _pick_slot(idle: list[Slot], job: Job, gpu_slots_exist: bool) -> Slot | None:
        wants_gpu = bool(job.settings.get("gpu", False))
        for slot in idle:
            if wants_gpu and slot.gpus > 0:
                return slot
            if slot.gpus == 0 and (
                not wants_gpu or (job.settings.get("allow_cpu_fallback") and not gpu_slots_exist)
            ):
                return slot
        return None

    def _assign(self, s: Session, slot: Slot, job: Job, task: Task, now: datetime) -> dict[str, Any]:
        if job.status == JobStatus.QUEUED.value:
            set_job_status(job, JobStatus.ACTIVE, now)
        set_task_status(task, TaskStatus.DISPATCHED, now, f"to {slot.name}")
        task.attempts += 1
        s.add(
            TaskAttempt(
                task_id=task.id,
                number=task.attempts,
                node=slot.node,
                worker=slot.name,
                status="dispatched",
                started_at=now,
            )
        )
        slot.task_id, slot.job_id, slot.attempt, slot.cancel_sent = task.id, job.id, task.attempts, False
        return {
            "job_id": job.id,
            "task_id": task.id,
            "attempt": task.attempts,
            "company_id": job.company_id,
            "blend_file": job.blend_file,
            "manifest": job.manifest,
            "frames": list(task.frames),
            "settings": dict(job.settings),
        }
