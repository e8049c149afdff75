"""The dispatch loop: hands runnable chunks to idle slots, applies what workers report, carries out
cancel requests, and recovers in-flight work after a restart. Every state change goes through
``farm.lifecycle.transitions``; workers only report facts."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import ray
from ray.exceptions import ActorDiedError, RayError
from sqlalchemy import func, select
from sqlalchemy.orm import Session, object_session

from farm.clock import Clock
from farm.db.engine import Database
from farm.db.models import Frame, Job, Task, TaskAttempt
from farm.domain.frames import format_frames
from farm.domain.states import JOB_TERMINAL, TASK_IN_FLIGHT, TASK_RUNNABLE, JobStatus, TaskStatus
from farm.lifecycle import blocklist
from farm.lifecycle.outcomes import Fault, Outcome, Verdict, decide
from farm.lifecycle.transitions import set_job_status, set_task_status, settle_job
from farm.metering import ledger
from scheduler import claims
from scheduler.fairshare import FairShare
from scheduler.heartbeat import Heartbeat
from scheduler.nodes import NodeTracker
from scheduler.pool import Slot, WorkerPool

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.2
#: After the scheduler kills an attempt whose lease expired, how long the worker has to answer before its actor
#: is killed and replaced.
KILL_GRACE_S = 10.0
#: How often jobs that cannot run anywhere get their reason refreshed.
EXPLAIN_INTERVAL_S = 2.0
REQUESTS_INTERVAL_S = 0.25
#: How often workers are told which ended jobs' folders to remove.
PRUNE_INTERVAL_S = 5.0
WAITING = "waiting: "
NO_NODE_LEFT = blocklist.NO_NODE_LEFT


class Dispatcher:
    """Owns the slots; runs in one thread (``run``) or step by step in tests (``step``)."""

    # Reliability, set by the entry point from the settings (``FARM_TASK_TIMEOUT_S``, ``FARM_BLOCKLIST_AFTER``);
    # ``nodes`` follows Ray nodes joining and leaving in cluster mode.
    task_timeout_s: float = 600.0
    blocklist_after: int = blocklist.DEFAULT_THRESHOLD
    nodes: NodeTracker | None = None
    _explained_at: float = 0.0
    _requests_at: float = 0.0
    _blocked_cache: tuple[Session, dict[str, set[str]]] | None = None

    def __init__(
        self,
        db: Database,
        pool: WorkerPool,
        clock: Clock,
        interval_s: float = 0.05,
        fair_share: FairShare | None = None,
    ) -> None:
        self.db = db
        self.pool = pool
        self.clock = clock
        self.interval_s = interval_s
        self.fair_share = fair_share or FairShare()
        self.wake = threading.Event()
        self.on_change: Callable[[], None] | None = None
        self.on_job_completed: Callable[[str], None] | None = None  # e.g. farm.media.preview.PreviewMaker
        self.periodic: list[Callable[[], None]] = []  # cheap calls each loop turn (storage sampler)
        # Chunks waiting out a store outage: task id -> (consecutive outages, monotonic time of the next try).
        # Kept in memory: after a restart they simply try again at once.
        self._store_waits: dict[str, tuple[int, float, str]] = {}
        self._jobs_seen: dict[str, set[str]] = {}  # slot name -> jobs whose folder it may hold
        self._pruned_at = 0.0

    # ---- start-up ---------------------------------------------------------------------------------------
    def recover(self) -> int:
        """After a restart no chunk is in flight (the old workers died with the old scheduler): requeue those the
        database thinks are running. Their attempts are marked lost, which counts against neither the chunk
        nor the node; frames already stored stay, and a re-render overwrites them under the same key."""
        now = self.clock.now()
        count = 0
        with self.db.session() as s:
            touched: set[str] = set()
            for task in s.scalars(select(Task).where(Task.status.in_([t.value for t in TASK_IN_FLIGHT]))):
                for attempt in s.scalars(
                    select(TaskAttempt).where(TaskAttempt.task_id == task.id, TaskAttempt.ended_at.is_(None))
                ):
                    attempt.status, attempt.ended_at = "lost", now
                    attempt.reason = "the scheduler restarted while this attempt ran"
                job = s.get(Job, task.job_id)
                if job is not None and JobStatus(job.status) in JOB_TERMINAL:
                    set_task_status(task, TaskStatus.CANCELED, now, f"job {job.status}")
                else:
                    set_task_status(task, TaskStatus.QUEUED, now, "requeued after scheduler restart")
                touched.add(task.job_id)
                count += 1
            waiting = (JobStatus.CANCEL_REQUESTED.value, JobStatus.PAUSE_REQUESTED.value)
            for job in s.scalars(select(Job).where((Job.status.in_(waiting)) | (Job.id.in_(touched)))):
                settle_job(s, job, now)
        if count:
            log.info("recovered %d in-flight chunk(s) after restart", count)
        return count

    # ---- the loop ---------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set."""
        beats = Heartbeat(self.db, self.pool, self.clock)  # worker and node states for /metrics of every replica
        while not stop.is_set():
            beats.tick()
            for hook in self.periodic:
                hook()
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
        happened = self._sync_nodes()
        happened |= self._collect()
        happened |= self._check_leases()
        poked = self.wake.is_set()  # the API recorded a request in this process (embedded mode)
        self.wake.clear()
        now = time.monotonic()
        if poked or happened or now - self._requests_at >= REQUESTS_INTERVAL_S:
            # A database query per loop pass would take CPU from Blender: requests from other processes
            # (cluster mode) are picked up a few times a second, which keeps cancel well under 2 s.
            self._requests_at = now
            happened |= self._carry_out_requests()
        happened |= self._dispatch()
        self._explain_waiting()
        self._prune_job_folders()
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
                except RayError:
                    pass  # the render ref reports the loss
            if slot.render_ref is not None and slot.render_ref in ready_set:
                ref = slot.render_ref
                try:
                    facts = ray.get(ref)
                except RayError as exc:
                    why = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
                    self._worker_lost(slot, why, died=isinstance(exc, ActorDiedError))
                else:
                    if slot.kill_reason and facts.get("outcome") != Outcome.COMPLETED:
                        # Stopped by the scheduler because its lease expired: a failure of the attempt, the node's.
                        facts.update(outcome="failed", reason=slot.kill_reason, exit_code=None, fault="node")
                    elif facts.get("outcome") == "canceled" and not facts.get("reason"):
                        facts["reason"] = "stopped on request (cancel, pause --now, or the job ended)"
                    self._apply_facts(slot, facts)
                happened = True
        return happened

    def _apply_poll(self, slot: Slot, report: dict[str, Any]) -> None:
        slot.last_beat = float(report.get("beat", time.time()))
        if slot.task_id is None or report.get("task") not in (None, slot.task_id):
            return
        if report.get("task") == slot.task_id and "lease_age" in report:
            # The worker measures the lease's age on its own clock; no wall clocks are compared across nodes.
            renewed = time.monotonic() - float(report["lease_age"])
            slot.lease_renewed = max(slot.lease_renewed, renewed)
        now = self.clock.now()
        with self.db.session() as s:
            task = s.get(Task, slot.task_id)
            if task is None:
                return
            if report.get("task") == slot.task_id and task.status == TaskStatus.DISPATCHED.value:
                set_task_status(task, TaskStatus.RUNNING, now, f"on {slot.name}")
            self._record_frames(s, task, slot.attempt, report.get("events", []), now)
            if report.get("task") == slot.task_id and report.get("log"):
                # Blender's output so far: the monitor and `farm logs` show it before the attempt ends.
                attempt = s.scalar(
                    select(TaskAttempt).where(
                        TaskAttempt.task_id == task.id,
                        TaskAttempt.number == slot.attempt,
                        TaskAttempt.ended_at.is_(None),
                    )
                )
                if attempt is not None:
                    attempt.log_tail = str(report["log"])

    def _record_frames(self, s: Session, task: Task, attempt: int, events: list[dict[str, Any]], now: datetime) -> None:
        """Record frames the attempt stored. Only this attempt's frames of this chunk count; a frame row never
        moves from one chunk to another."""
        wanted = set(task.frames)
        for ev in events:
            frame = int(ev["frame"])
            if ev.get("task_id") != task.id or int(ev.get("attempt", -1)) != attempt or frame not in wanted:
                log.error(
                    "task %s attempt %d: refused a frame event of task %s attempt %s frame %s",
                    task.id,
                    attempt,
                    ev.get("task_id"),
                    ev.get("attempt"),
                    frame,
                )
                continue
            row = s.get(Frame, (task.job_id, frame))
            if row is None:
                row = Frame(job_id=task.job_id, frame=frame, task_id=task.id)
                s.add(row)
            elif row.task_id != task.id:
                log.error(
                    "job %s frame %d belongs to task %s, not %s: refused", task.job_id, frame, row.task_id, task.id
                )
                continue
            row.key, row.name = str(ev["key"]), str(ev["name"])
            row.size, row.sha256 = int(ev["size"]), str(ev["sha256"])
            row.device, row.render_seconds = str(ev.get("device", "CPU")), float(ev.get("seconds", 0.0))
            row.created_at = now

    @staticmethod
    def _missing_frames(s: Session, task: Task) -> list[int]:
        """Frames of the chunk with no stored file (size and sha256) recorded for it."""
        stored = set(
            s.scalars(
                select(Frame.frame).where(
                    Frame.job_id == task.job_id, Frame.task_id == task.id, Frame.sha256 != "", Frame.size >= 0
                )
            )
        )
        return sorted(set(task.frames) - stored)

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
            if job is None:
                slot.release()
                return
            self._record_frames(s, task, int(facts["attempt"]), facts.get("frames", []), now)
            attempt = s.scalar(
                select(TaskAttempt).where(TaskAttempt.task_id == task.id, TaskAttempt.number == facts["attempt"])
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
                attempt.fault = str(facts.get("fault", "")) if outcome == Outcome.FAILED else ""
                attempt.warning = str(facts.get("warning", ""))[:4000]
            if facts.get("warning") and not job.warning:
                job.warning = str(facts["warning"])[:4000]
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
            fault = Fault(str(facts.get("fault", "")) or ("node" if outcome == Outcome.FAILED else ""))
            self._settle_task(s, job, task, Outcome(outcome), fault, str(facts.get("reason", "")), now, attempt)
            was_completed = job.status == JobStatus.COMPLETED.value
            settle_job(s, job, now)
            completed_job = job.id if not was_completed and job.status == JobStatus.COMPLETED.value else None
        slot.release()
        if completed_job is not None and self.on_job_completed is not None:
            try:
                self.on_job_completed(completed_job)  # after the commit, so what it reads is there
            except Exception:
                log.exception("job %s: the on-completion hook failed", completed_job)

    def _settle_task(
        self,
        s: Session,
        job: Job,
        task: Task,
        outcome: Outcome,
        fault: Fault,
        reason: str,
        now: datetime,
        attempt: TaskAttempt | None = None,
    ) -> None:
        """Apply the verdict on an attempt (``farm.lifecycle.outcomes.decide``) to its chunk, job and node."""
        if TaskStatus(task.status) not in TASK_IN_FLIGHT:
            return
        job_status = JobStatus(job.status)
        if outcome is not Outcome.COMPLETED and (
            job_status is JobStatus.CANCEL_REQUESTED or job_status in JOB_TERMINAL
        ):
            set_task_status(task, TaskStatus.CANCELED, now, f"job {job_status.value}")
            return
        waits = self._store_waits.get(task.id, (0, 0.0, ""))[0] + 1 if fault is Fault.STORAGE else 0
        verdict = decide(
            outcome,
            fault,
            reason,
            failures_before=task.failures,
            max_attempts=int(str(job.settings.get("max_attempts", 3))),
            missing_frames=self._missing_frames(s, task) if outcome is Outcome.COMPLETED else [],
            storage_waits=waits,
        )
        self._apply_verdict(s, job, task, verdict, now, attempt, waits)

    def _apply_verdict(
        self,
        s: Session,
        job: Job,
        task: Task,
        verdict: Verdict,
        now: datetime,
        attempt: TaskAttempt | None,
        waits: int,
    ) -> None:
        if attempt is not None and attempt.status == Outcome.COMPLETED and verdict.task is not TaskStatus.COMPLETED:
            # The worker said "completed" but frames are missing: the attempt failed, and says which frames.
            attempt.status, attempt.fault, attempt.reason = Outcome.FAILED.value, Fault.NODE.value, verdict.reason
        if verdict.retry_after_s:
            self._store_waits[task.id] = (waits, time.monotonic() + verdict.retry_after_s, job.id)
            job.status_reason = f"{WAITING}{verdict.reason}"[:4000]
        else:
            self._store_waits.pop(task.id, None)
        if verdict.counts_against_chunk:
            task.failures += 1
        if verdict.counts_against_node:
            node = attempt.node if attempt is not None else ""
            blocklist.record_failure(
                s,
                job.id,
                node,
                verdict.reason,
                now,
                self.blocklist_after,
                task_id=task.id,
                attempt=attempt.number if attempt is not None else None,
            )
        set_task_status(task, verdict.task, now, verdict.reason)
        if verdict.task is TaskStatus.FAILED and job.settings.get("on_chunk_failure") == "fail-job":
            self._fail_job(s, job, task, verdict.cause or verdict.reason, now)
        if JobStatus(job.status) not in JOB_TERMINAL and self._has_failed_chunks(s, job):
            # A job with a failed chunk can only end failed: settle it here, where the reason is known.
            settle_job(s, job, now)
            if job.status == JobStatus.FAILED.value:
                job.status_reason = self._failure_summary(s, job)

    @staticmethod
    def _has_failed_chunks(s: Session, job: Job) -> bool:
        return bool(
            s.scalar(
                select(func.count())
                .select_from(Task)
                .where(Task.job_id == job.id, Task.status == TaskStatus.FAILED.value)
            )
        )

    @staticmethod
    def _failure_summary(s: Session, job: Job) -> str:
        """Why the job failed, in one line: how many chunks, the first one's frames and last reason, blocked nodes."""
        failed = list(
            s.scalars(
                select(Task).where(Task.job_id == job.id, Task.status == TaskStatus.FAILED.value).order_by(Task.index)
            )
        )
        total = s.scalar(select(func.count()).select_from(Task).where(Task.job_id == job.id)) or 0
        text = f"{len(failed)} of {total} chunk(s) failed"
        if failed:
            first = failed[0]
            last = s.scalar(
                select(TaskAttempt)
                .where(TaskAttempt.task_id == first.id, TaskAttempt.status == "failed")
                .order_by(TaskAttempt.number.desc())
                .limit(1)
            )
            text += f"; chunk {first.index} (frames {format_frames(first.frames)})"
            if last is not None:
                text += f" after {first.failures} attempt(s), last on {last.node or '?'}: {last.reason}"
        blocked = sorted(blocklist.blocked_nodes(s, job.id))
        if blocked:
            text += f"; blocklisted: {', '.join(blocked)}"
        return text[:4000]

    def _fail_job(self, s: Session, job: Job, task: Task, reason: str, now: datetime) -> None:
        """``on_chunk_failure: fail-job``: the job fails now; its other chunks are canceled (running ones are
        stopped by ``_carry_out_requests``, and frames they already stored are kept)."""
        why = f"chunk {task.index} (frames {format_frames(task.frames)}) failed {task.failures} time(s): {reason}"
        for other in s.scalars(select(Task).where(Task.job_id == job.id, Task.id != task.id)):
            if TaskStatus(other.status) in (*TASK_RUNNABLE, TaskStatus.PAUSED):
                set_task_status(other, TaskStatus.CANCELED, now, "job failed")
        set_job_status(job, JobStatus.FAILED, now, why[:4000])

    def _worker_lost(self, slot: Slot, why: str, died: bool = False) -> None:
        """The actor died (node lost, crash) or stopped answering: settle its chunk and replace the actor.

        When its node left (or it merely became unreachable) the chunk is requeued at once and the attempt
        counts against nothing. When the worker process died on a node that is still there, or ignored the
        kill after its lease expired, the attempt failed: it counts, so a chunk that kills its worker each time
        is not retried forever.
        """
        now = self.clock.now()
        failed = bool(slot.kill_reason)
        reason = slot.kill_reason
        if not failed:
            if self._node_gone(slot):
                reason = f"worker lost: node {slot.node} left the cluster ({why})"
            elif died:
                failed, reason = True, f"the worker process died while rendering this chunk ({why})"
            else:
                reason = f"worker lost: {why}"
        log.warning("worker %s lost while rendering %s: %s", slot.name, slot.task_id, reason)
        with self.db.session() as s:
            task = s.get(Task, slot.task_id) if slot.task_id else None
            if task is not None:
                attempt = s.scalar(
                    select(TaskAttempt).where(TaskAttempt.task_id == task.id, TaskAttempt.number == slot.attempt)
                )
                if attempt is not None:
                    attempt.status, attempt.ended_at = ("failed" if failed else "lost"), now
                    attempt.reason = reason
                    attempt.fault = Fault.NODE.value if failed else ""
                job = s.get(Job, task.job_id)
                if job is not None and TaskStatus(task.status) in TASK_IN_FLIGHT:
                    outcome = Outcome.FAILED if failed else Outcome.LOST
                    fault = Fault.NODE if failed else Fault.NONE
                    self._settle_task(s, job, task, outcome, fault, reason, now, attempt)
                    settle_job(s, job, now)
        self.pool.replace(slot)

    def _send_polls(self) -> None:
        now = time.monotonic()
        for slot in self.pool.slots:
            if slot.task_id is not None and slot.poll_ref is None and now - slot.poll_sent_at >= POLL_INTERVAL_S:
                slot.poll_ref = slot.actor.poll.remote()
                slot.poll_sent_at = now

    # ---- requests -----------------------------------------------------------------------------------------
    def _carry_out_requests(self) -> bool:
        """Stop the running chunks of jobs being canceled, paused with ``--now``, or already over (a failed
        chunk failed the job); settle such jobs that hold no slot any more."""
        busy = {slot.task_id: slot for slot in self.pool.slots if slot.task_id is not None}
        busy_jobs = {slot.job_id for slot in busy.values()}
        happened = False
        with self.db.session() as s:
            stopping = list(
                s.scalars(
                    select(Job).where(
                        (Job.status == JobStatus.CANCEL_REQUESTED.value)
                        # Plain pauses too: a pause recorded just after the last running chunk was settled
                        # has nobody else to settle it.
                        | (Job.status == JobStatus.PAUSE_REQUESTED.value)
                        | (Job.id.in_(busy_jobs) & Job.status.in_([j.value for j in JOB_TERMINAL]))
                    )
                )
            )
            for job in stopping:
                holding = [slot for slot in busy.values() if slot.job_id == job.id]
                plain_pause = job.status == JobStatus.PAUSE_REQUESTED.value and not job.pause_now
                for slot in [] if plain_pause else holding:  # a plain pause lets running chunks finish
                    if not slot.cancel_sent and slot.task_id is not None:
                        slot.actor.cancel.remote(slot.task_id)
                        slot.cancel_sent = True
                        happened = True
                if not holding and JobStatus(job.status) not in JOB_TERMINAL:
                    # No slot holds its chunks any more (e.g. dispatched before a restart): settle now.
                    for task in s.scalars(select(Task).where(Task.job_id == job.id)):
                        if TaskStatus(task.status) in TASK_IN_FLIGHT and job.status == JobStatus.CANCEL_REQUESTED:
                            set_task_status(task, TaskStatus.CANCELED, self.clock.now(), "job canceled")
                    before = job.status
                    settle_job(s, job, self.clock.now())
                    happened |= job.status != before
        return happened

    # ---- leases, nodes, reasons ---------------------------------------------------------------------------
    def _check_leases(self) -> bool:
        """Kill attempts whose lease expired (no frame and no progress for ``task_timeout_s``); the attempt then
        fails and the chunk is retried. A worker that ignores the kill loses its actor."""
        now = time.monotonic()
        happened = False
        for slot in list(self.pool.slots):
            if slot.task_id is None:
                continue
            if slot.lease_for != (slot.task_id, slot.attempt):
                slot.lease_for, slot.lease_renewed = (slot.task_id, slot.attempt), now  # a new attempt
                continue
            if slot.kill_reason:
                if now - slot.kill_sent_at > KILL_GRACE_S:
                    self._worker_lost(slot, "did not stop after its lease expired")
                    happened = True
                continue
            if now - slot.lease_renewed > self.task_timeout_s:
                slot.kill_reason = (
                    f"lease expired: no frame or progress for {self.task_timeout_s:g}s (FARM_TASK_TIMEOUT_S); "
                    "the attempt was killed"
                )
                slot.kill_sent_at = now
                log.warning("worker %s: %s (task %s)", slot.name, slot.kill_reason, slot.task_id)
                slot.actor.cancel.remote(slot.task_id)
                slot.cancel_sent = True
                happened = True
        return happened

    def _node_gone(self, slot: Slot) -> bool:
        """Whether the slot's node has left, asking Ray now (the tracker's view may be a second old)."""
        if not slot.node_id or self.nodes is None:
            return False
        try:
            return not any(n.get("NodeID") == slot.node_id and n.get("Alive") for n in self.nodes.list_nodes())
        except Exception:
            return not self.nodes.alive(slot.node_id)

    def _sync_nodes(self) -> bool:
        """Follow nodes joining (new slots) and leaving (their chunks are requeued at once), and slots warming."""
        happened = False
        if self.nodes is not None:
            for slot in self.nodes.sync():
                if slot.task_id is not None:
                    self._worker_lost(slot, "its node left the cluster")  # requeues, then removes the slot
                else:
                    self.pool.remove(slot)
                happened = True
        happened |= self.pool.poll_warm()
        return happened

    def _explain_waiting(self) -> None:
        """Give queued jobs that no slot can take a reason that says why (and what to do)."""
        now = time.monotonic()
        if now - self._explained_at < EXPLAIN_INTERVAL_S:
            return
        self._explained_at = now
        slots = [slot for slot in self.pool.slots if slot.ready]
        gpu_slots_exist = any(slot.gpus > 0 for slot in slots)
        with self.db.session() as s:
            jobs = s.scalars(
                select(Job).where(
                    Job.status.in_([JobStatus.QUEUED.value, JobStatus.ACTIVE.value]),
                    Job.id.in_(select(Task.job_id).where(Task.status.in_([t.value for t in TASK_RUNNABLE])).distinct()),
                )
            )
            store_jobs = {job_id for _, until, job_id in self._store_waits.values() if until > now}
            for job in list(jobs):
                reason = self._why_waiting(s, job, slots, gpu_slots_exist)
                if reason.startswith(NO_NODE_LEFT):
                    self._fail_unplaceable(s, job, reason)
                elif reason and job.status_reason != reason:
                    job.status_reason = reason
                    log.info("job %s: %s", job.id, reason)
                elif not reason and job.status_reason.startswith(WAITING) and job.id not in store_jobs:
                    job.status_reason = ""

    def _fail_unplaceable(self, s: Session, job: Job, reason: str) -> None:
        """Every node that could take the job is blocklisted for it: rather than sit "rendering" forever, the job
        fails and says so, once no chunk of it is rendering. ``farm unblock`` (CLI or monitor) runs it again."""
        in_flight = s.scalar(
            select(func.count())
            .select_from(Task)
            .where(Task.job_id == job.id, Task.status.in_([t.value for t in TASK_IN_FLIGHT]))
        )
        if in_flight:
            return
        now = self.clock.now()
        for task in s.scalars(
            select(Task).where(Task.job_id == job.id, Task.status.in_([t.value for t in TASK_RUNNABLE]))
        ):
            set_task_status(task, TaskStatus.FAILED, now, reason)
        set_job_status(job, JobStatus.FAILED, now, reason[:4000])

    def _why_waiting(self, s: Session, job: Job, slots: list[Slot], gpu_slots_exist: bool) -> str:
        if not slots:
            return WAITING + "no render slot is up (no worker node has joined, or all are starting)"
        wants_gpu = bool(job.settings.get("gpu", False))
        fallback = bool(job.settings.get("allow_cpu_fallback")) and not gpu_slots_exist
        kind = [slot for slot in slots if (slot.gpus > 0 if wants_gpu else slot.gpus == 0) or (wants_gpu and fallback)]
        if not kind:
            if wants_gpu:
                return WAITING + "no GPU slot is up and this job does not allow CPU fallback"
            return WAITING + "no CPU slot is up"
        blocked = blocklist.blocked_nodes(s, job.id)
        if all(slot.node in blocked for slot in kind):
            return NO_NODE_LEFT + (
                f"every node that could render it is blocklisted for it ({', '.join(sorted(blocked))}); "
                f"`farm unblock {job.id}` (or Unblock in the monitor) runs it again"
            )
        return ""

    # ---- dispatch -----------------------------------------------------------------------------------------
    def _dispatch(self) -> bool:
        idle = self.pool.idle()
        if not idle:
            return False
        now = self.clock.now()
        handed: list[tuple[Slot, dict[str, Any]]] = []
        with self.db.session() as s:
            # Fair share between companies, caps and budgets decide the order (scheduler.fairshare).
            rows = self.fair_share.round(s, self.pool.slots, idle, now)
            gpu_slots_exist = any(slot.gpus > 0 for slot in self.pool.slots)
            clock_now = time.monotonic()
            for task, job in rows:
                if self._store_waits.get(task.id, (0, 0.0, ""))[1] > clock_now:
                    continue  # waiting out a store outage
                slot = self._pick_slot(idle, job, gpu_slots_exist, task)
                if slot is None:
                    continue
                if not claims.claim(s, job, task):  # PostgreSQL: locked or taken by another process meanwhile
                    continue
                idle.remove(slot)
                rows.taken(job, slot)
                handed.append((slot, self._assign(s, slot, job, task, now)))
                if not idle:
                    break
        for slot, assignment in handed:
            slot.render_ref = slot.actor.render.remote(assignment)
            slot.poll_sent_at = 0.0
            self._jobs_seen.setdefault(slot.name, set()).add(str(assignment["job_id"]))
        return bool(handed)

    def _prune_job_folders(self) -> None:
        """Tell each worker which of the jobs it rendered have ended, so it removes their folders."""
        now = time.monotonic()
        if now - self._pruned_at < PRUNE_INTERVAL_S or not self._jobs_seen:
            return
        self._pruned_at = now
        seen = set().union(*self._jobs_seen.values())
        with self.db.session() as s:
            ended = set(
                s.scalars(select(Job.id).where(Job.id.in_(seen), Job.status.in_([j.value for j in JOB_TERMINAL])))
            )
            ended |= seen - set(s.scalars(select(Job.id).where(Job.id.in_(seen))))  # deleted meanwhile
        if not ended:
            return
        for slot in self.pool.slots:
            drop = sorted(self._jobs_seen.get(slot.name, set()) & ended)
            if drop and slot.ready:
                slot.actor.drop_jobs.remote(drop)  # fire and forget: a slot that misses it cleans up at start
                self._jobs_seen[slot.name] -= set(drop)

    def _pick_slot(self, idle: list[Slot], job: Job, gpu_slots_exist: bool, task: Task | None = None) -> Slot | None:
        """An idle slot for a chunk of ``job``: GPU jobs on GPU slots (CPU ones only when the job allows it and
        no GPU slot exists), never on a node blocklisted for the job, and a retried chunk on another node than
        those it failed on whenever such a node could take it (even if that means waiting for it)."""
        wants_gpu = bool(job.settings.get("gpu", False))
        fallback = bool(job.settings.get("allow_cpu_fallback")) and not gpu_slots_exist
        session = object_session(job)
        blocked = self._blocked_nodes(session, job.id) if session is not None else set()

        def fits(slot: Slot) -> bool:
            if slot.node in blocked:
                return False
            return (slot.gpus > 0 or fallback) if wants_gpu else slot.gpus == 0

        candidates = [slot for slot in idle if fits(slot)]
        if not candidates or task is None or not task.failures or session is None:
            return candidates[0] if candidates else None
        failed_on = set(
            session.scalars(
                select(TaskAttempt.node).where(TaskAttempt.task_id == task.id, TaskAttempt.status == "failed")
            )
        )
        elsewhere = [slot for slot in candidates if slot.node not in failed_on]
        if elsewhere:
            return elsewhere[0]
        if any(fits(slot) and slot.node not in failed_on for slot in self.pool.slots if slot.ready):
            return None  # another node can take it once it is free
        return candidates[0]

    def _blocked_nodes(self, session: Session, job_id: str) -> set[str]:
        """The job's blocked nodes, read once per dispatch pass (its session) rather than once per candidate."""
        cache = self._blocked_cache
        if cache is None or cache[0] is not session:
            cache = (session, {})
            self._blocked_cache = cache
        if job_id not in cache[1]:
            cache[1][job_id] = blocklist.blocked_nodes(session, job_id)
        return cache[1][job_id]

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
