"""The dispatch loop: hands runnable chunks to idle slots, applies what workers report, carries out cancel and
pause requests, and keeps leases. Every status change and its consequences are ``farm.lifecycle``'s; placement
and leases are pure policies (``scheduler.placement``, ``scheduler.leases``); workers only report facts.

What the workers reported since the last pass (frames stored, progress, finished attempts, lost actors) is
applied in one transaction per pass, so the cost of a finished chunk does not grow with the number of slots.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import ray
from ray.exceptions import ActorDiedError, RayError
from sqlalchemy import select
from sqlalchemy.orm import Session

from farm.clock import Clock
from farm.contract import JobSettings
from farm.db.engine import Database, is_postgresql
from farm.db.models import Job, Task, TaskAttempt
from farm.domain import reasons
from farm.domain.attempts import Assignment, AttemptFacts, Fault, Outcome, PollReport, StoreGrant
from farm.domain.states import JOB_TERMINAL, TASK_IN_FLIGHT, JobStatus, TaskStatus
from farm.lifecycle import attempts, blocklist, control, tallies
from farm.lifecycle.transitions import set_job_status, set_task_status
from scheduler import bundles, claims, leases, placement
from scheduler.fairshare import FairShare
from scheduler.heartbeat import Heartbeat
from scheduler.nodes import NodeTracker, NodeView
from scheduler.pool import Slot, WorkerPool

log = logging.getLogger(__name__)

WAITING = attempts.WAITING
NO_NODE_LEFT = blocklist.NO_NODE_LEFT


@dataclass(frozen=True)
class DispatchConfig:
    """How the loop behaves; the entry point builds it from the settings."""

    interval_s: float = 0.05
    #: ``FARM_TASK_TIMEOUT_S``: an attempt with no frame and no progress for this long is killed.
    task_timeout_s: float = 600.0
    #: ``FARM_BLOCKLIST_AFTER``: failed chunks of one job after which a node gets no more of them.
    blocklist_after: int = blocklist.DEFAULT_THRESHOLD
    #: After a kill for an expired lease, how long the worker has to answer before its actor is replaced.
    kill_grace_s: float = 10.0
    poll_interval_s: float = 0.2
    #: Requests recorded by other processes (cluster mode) are picked up this often; well under cancel's 2 s.
    requests_interval_s: float = 0.25
    explain_interval_s: float = 2.0
    #: How often workers are told which ended jobs' folders to remove.
    prune_interval_s: float = 5.0
    #: After a busy pass, how long the loop may wait for more renders to end before the next one, so a pass
    #: applies several reports: its own cost (fair share, preload, commit) is shared by them (``_gather``).
    gather_s: float = 0.02
    #: Bundles (``scheduler.bundles``): a slot may take several chunks of a job whose chunks are measured short,
    #: as many as fit in ``bundle_s`` seconds, at most ``bundle_max``; 1 turns bundles off.
    bundle_s: float = 0.25
    bundle_max: int = 32


@dataclass
class _Reports:
    """What arrived from the workers in one pass."""

    polls: list[tuple[Slot, PollReport]]
    ended: list[tuple[Slot, AttemptFacts]]
    lost: list[tuple[Slot, str, bool]]  # slot, why, the actor died

    def __bool__(self) -> bool:
        return bool(self.polls or self.ended or self.lost)


class Dispatcher:
    """Owns the slots; runs in one thread (``run``) or step by step in tests (``step``)."""

    def __init__(
        self,
        db: Database,
        pool: WorkerPool,
        clock: Clock,
        config: DispatchConfig | None = None,
        fair_share: FairShare | None = None,
        nodes: NodeTracker | None = None,
    ) -> None:
        self.db = db
        self.pool = pool
        self.clock = clock
        self.config = config or DispatchConfig()
        self.fair_share = fair_share or FairShare()
        self.nodes = nodes
        self.node_view = nodes.view if nodes is not None else NodeView()  # the heartbeat's too (scheduler.nodes)
        self.wake = threading.Event()
        self.on_change: Callable[[], None] | None = None
        self.on_job_completed: Callable[[str], None] | None = None  # e.g. farm.media.preview.PreviewMaker
        self.periodic: list[Callable[[], None]] = []  # cheap calls each loop turn (storage sampler)
        # Issue 15: signs each assignment's store grant (an S3 store; render nodes hold no key). None: local store.
        self.grants: Callable[[str, str, dict[str, Any], int], StoreGrant] | None = None
        # Issue 15: told each worker's failed store calls (cumulative, from polls and facts), e.g. StoreErrors.
        self.store_errors: Callable[[str, dict[str, int]], None] | None = None
        self.store_waits = attempts.StoreWaits()
        self.chunk_times = bundles.ChunkTimes()  # seconds per chunk of recent jobs (bundles)
        self.calls: Counter[int] = Counter()  # calls sent to workers, by the number of chunks they carried
        self._jobs_seen: dict[str, set[str]] = {}  # slot name -> jobs whose folder it may hold
        self._requests_at = self._explained_at = self._pruned_at = float("-inf")

    @property
    def policy(self) -> attempts.Policy:
        return attempts.Policy(blocklist_after=self.config.blocklist_after)

    def configure(self, **changes: Any) -> None:
        """Change the configuration (tests, and entry points that learn a value late)."""
        self.config = replace(self.config, **changes)

    # ---- start-up ---------------------------------------------------------------------------------------
    def recover(self) -> int:
        """Requeue what a previous scheduler left in flight (``farm.lifecycle.attempts.recover``)."""
        with self.db.session() as s:
            return attempts.recover(s, self.clock.now())

    # ---- the loop ---------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set."""
        # Worker and node states for /metrics of every replica, from the same node view as node loss.
        beats = Heartbeat(self.db, self.pool, self.clock, nodes=self.node_view)
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
                ray.wait(refs, num_returns=1, timeout=self.config.interval_s)
            elif active:
                self._gather()
            elif not refs:
                self.wake.wait(0.5)
                self.wake.clear()

    def step(self) -> bool:
        """One pass: reports, leases, requests, dispatch. True when something happened.

        The reports, the requests and the dispatch decisions of a pass share one transaction; the chunks it hands
        out are sent to their workers once it committed.
        """
        happened = self._sync_nodes()
        reports = self._collect()
        happened |= self._check_leases()
        poked = self.wake.is_set()  # the API recorded a request in this process (embedded mode)
        self.wake.clear()
        mono = self.clock.monotonic()
        requests_due = poked or mono - self._requests_at >= self.config.requests_interval_s
        handed: list[tuple[Slot, list[Assignment]]] = []
        completed: list[str] = []
        if not (reports or requests_due or self.pool.idle()):
            return self._tail(happened)  # a render is under way and nothing arrived: no database work
        try:
            with self.db.session() as s:
                if reports:  # SQLite: writing anyway, so hold the lock now (PostgreSQL: the preload locks rows)
                    claims.hold_sqlite(s)
                completed, ended, troubled = self._apply_all(s, reports)
                for slot, _facts in reports.ended:
                    slot.release()  # free for this pass's dispatch
                # A chunk that failed or was lost may have ended its job: its other running chunks are stopped now.
                # (A job that completed holds no slot: nothing to stop, so its first frame is not held up.)
                if requests_due or troubled:
                    self._requests_at = mono
                    happened |= self._carry_out_requests(s)
                # A job that waits for others can only start once one ended (here, or by a request).
                handed = self._dispatch(s, refresh_waits=requests_due or ended)
        except Exception:
            log.exception("a dispatch pass failed; applying its %d report(s) one by one", self._count(reports))
            handed, completed = [], self._apply_one_by_one(reports)
            for slot, _facts in reports.ended:
                slot.release()
        happened |= bool(reports) or bool(handed)
        self._after_commit(reports, handed, completed)
        return self._tail(happened)

    def _tail(self, happened: bool) -> bool:
        self._explain_waiting()
        self._prune_job_folders()
        self._send_polls()
        if happened and self.on_change is not None:
            self.on_change()
        return happened

    def _gather(self) -> None:
        """Wait up to ``gather_s`` until three quarters of the chunks being rendered have ended (at once when they
        have), so the next pass applies their reports together; one chunk alone is not waited for (latency)."""
        rendering = [slot.render_ref for slot in self.pool.slots if slot.render_ref is not None]
        if len(rendering) >= 2 and self.config.gather_s > 0:
            ray.wait(rendering, num_returns=len(rendering) * 3 // 4, timeout=self.config.gather_s)

    def _outstanding(self) -> list[Any]:
        refs = []
        for slot in self.pool.slots:
            if slot.render_ref is not None:
                refs.append(slot.render_ref)
            if slot.poll_ref is not None:
                refs.append(slot.poll_ref)
        return refs

    # ---- reports from the workers -------------------------------------------------------------------------
    def _collect(self) -> _Reports:
        reports = _Reports([], [], [])
        refs = self._outstanding()
        if not refs:
            return reports
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        if not ready:
            return reports
        ready_set = set(ready)
        for slot in list(self.pool.slots):
            if slot.poll_ref is not None and slot.poll_ref in ready_set:
                ref, slot.poll_ref = slot.poll_ref, None
                try:
                    poll: PollReport = ray.get(ref)
                except RayError:
                    pass  # the render ref reports the loss
                else:
                    reports.polls.append((slot, poll))
                    self._note_store_errors(slot, poll.storage_errors)
            if slot.render_ref is not None and slot.render_ref in ready_set:
                try:
                    result: AttemptFacts | list[AttemptFacts] = ray.get(slot.render_ref)
                except RayError as exc:
                    why = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
                    died = isinstance(exc, ActorDiedError)
                    if len(slot.call) > 1 and not died:
                        # E.g. a render node still running older worker code, without ``render_bundle``: the
                        # slot's chunks go one by one from now on, so they are not lost again and again.
                        slot.bundles = False
                        log.warning("worker %s: a bundle failed (%s); sending it one chunk at a time", slot.name, why)
                    reports.lost.append((slot, why, died))
                else:
                    every = result if isinstance(result, list) else [result]  # a bundle: one per chunk
                    for facts in every:
                        reports.ended.append((slot, self._as_decided(slot, facts)))
                    if every:
                        self._note_store_errors(slot, every[-1].storage_errors)
        return reports

    def _note_store_errors(self, slot: Slot, counts: dict[str, int]) -> None:
        if self.store_errors is not None and counts:
            # Counts are per actor: a replaced actor (a new handle) starts from zero under a key of its own.
            self.store_errors(f"{slot.name}#{id(slot.actor)}", counts)

    @staticmethod
    def _as_decided(slot: Slot, facts: AttemptFacts) -> AttemptFacts:
        killed = slot.kill_for is None or slot.kill_for == (facts.task_id, facts.attempt)
        if slot.kill_reason and killed and facts.outcome is not Outcome.COMPLETED:
            # Stopped by the scheduler because its lease expired: a failure of the attempt, the node's.
            return replace(facts, outcome=Outcome.FAILED, reason=slot.kill_reason, exit_code=None, fault=Fault.NODE)
        if facts.outcome is Outcome.CANCELED and not facts.reason:
            return replace(facts, reason=reasons.make("stopped"))
        return facts

    def _apply_one_by_one(self, reports: _Reports) -> list[str]:
        """Each report in its own transaction, so a bad one cannot hold the others back."""
        completed: list[str] = []
        for one in self._split(reports):
            try:
                with self.db.session() as s:
                    completed += self._apply_all(s, one)[0]
            except Exception:
                log.exception("a worker report could not be applied")
        return completed

    def _after_commit(
        self, reports: _Reports, handed: list[tuple[Slot, list[Assignment]]], completed: list[str]
    ) -> None:
        """What may only happen once the pass is committed: replace lost slots, send the chunks handed out
        (a worker must never report on an attempt the database does not have yet), run completion hooks."""
        for slot, why, _died in reports.lost:
            log.warning("worker %s lost: %s", slot.name, why)
            self.pool.replace(slot)
        for slot, bundle in handed:
            if len(bundle) == 1:
                slot.render_ref = slot.actor.render.remote(bundle[0])
            else:
                slot.render_ref = slot.actor.render_bundle.remote(bundle)
            self.calls[len(bundle)] += 1
            slot.poll_sent_at = self.clock.monotonic()  # a chunk's first poll after one interval, not at once
            self._jobs_seen.setdefault(slot.name, set()).add(bundle[0].job_id)
        for job_id in completed:
            if self.on_job_completed is not None:
                try:
                    self.on_job_completed(job_id)  # after the commit, so what it reads is there
                except Exception:
                    log.exception("job %s: the on-completion hook failed", job_id)

    @staticmethod
    def _count(reports: _Reports) -> int:
        return len(reports.polls) + len(reports.ended) + len(reports.lost)

    @staticmethod
    def _split(reports: _Reports) -> list[_Reports]:
        return (
            [_Reports([p], [], []) for p in reports.polls]
            + [_Reports([], [e], []) for e in reports.ended]
            + [_Reports([], [], [lost]) for lost in reports.lost]
        )

    def _apply_all(self, s: Session, reports: _Reports) -> tuple[list[str], bool, bool]:
        """Apply reports; returns the jobs that completed, whether any job ended or a chunk did not complete (jobs
        waiting for others may start), and whether a chunk did not complete (requests may follow)."""
        now, mono = self.clock.now(), self.clock.monotonic()
        task_ids = {facts.task_id for _, facts in reports.ended}
        task_ids |= {slot.task_id for slot, _ in reports.polls if slot.task_id}
        task_ids |= {slot.task_id for slot, _, _ in reports.lost if slot.task_id}
        # Hold the rows this pass changes (their counters move) and read them in a few queries.
        attempts.preload(s, task_ids, lock_jobs=is_postgresql(s.get_bind()))
        finishing = {slot.name for slot, _ in reports.ended}
        for slot, report in reports.polls:
            # The facts of an attempt that ended in this pass carry its frames: its last poll adds nothing.
            if slot.name not in finishing:
                self._apply_poll(s, slot, report, mono)
        completed: list[str] = []
        ended = troubled = False
        for slot, facts in reports.ended:
            job = attempts.attempt_ended(s, facts, now, self.policy, self.store_waits, mono)
            self.fair_share.attempt_ended(slot, facts.started_at, facts.ended_at)
            if facts.outcome is Outcome.COMPLETED and slot.job_id is not None:
                self.chunk_times.add(slot.job_id, facts.seconds)
            if job is not None:
                completed.append(job.id)
                self.chunk_times.forget(job.id)
            troubled |= facts.outcome is not Outcome.COMPLETED
            ended |= job is not None
        for slot, why, died in reports.lost:
            self._worker_lost(s, slot, why, died)
            troubled = True
        return completed, ended or troubled, troubled

    def _apply_poll(self, s: Session, slot: Slot, report: PollReport, mono: float) -> None:
        slot.last_beat = report.beat
        if slot.task_id is None:
            return
        if report.task not in (None, slot.task_id) and not slot.advance(report.task):
            return  # not a chunk of this slot's call (an earlier call's late poll)
        mine = report.task == slot.task_id and report.attempt == slot.attempt
        if mine:
            # The worker measures the lease's age on its own clock; no wall clocks are compared across nodes.
            slot.lease_renewed = max(slot.lease_renewed, mono - report.lease_age)
        # Frames of an earlier attempt on this slot arrived with that attempt's facts already.
        events = [ev for ev in report.events if ev.task_id == slot.task_id and ev.attempt == slot.attempt]
        if not events and not (mine and (report.log or not slot.running)):
            return  # nothing new: no database work
        task = s.get(Task, slot.task_id)
        if task is None:
            return
        now = self.clock.now()
        if mine and not slot.running:
            slot.running = True
            if task.status == TaskStatus.DISPATCHED:
                set_task_status(task, TaskStatus.RUNNING, now, f"on {slot.name}")
        attempts.record_frames(s, task, slot.attempt, events, now)
        if mine and report.log:
            # Blender's output so far: the monitor and `farm logs` show it before the attempt ends.
            attempt = s.scalar(
                select(TaskAttempt).where(
                    TaskAttempt.task_id == task.id, TaskAttempt.number == slot.attempt, TaskAttempt.ended_at.is_(None)
                )
            )
            if attempt is not None:
                attempt.log_tail = report.log

    def _worker_lost(self, s: Session, slot: Slot, why: str, died: bool) -> None:
        """The actor died (node lost, crash) or stopped answering; the caller replaces it.

        When its node left (or it merely became unreachable) the chunk is requeued at once and the attempt
        counts against nothing. When the worker process died on a node that is still there, or ignored the
        kill after its lease expired, the attempt failed: it counts, so a chunk that kills its worker each time
        is not retried forever.
        """
        failed, reason = bool(slot.kill_reason), slot.kill_reason
        if not failed:
            if self._node_gone(slot):
                reason = reasons.make("node_left", node=slot.node, why=why)
            elif died:
                failed, reason = True, reasons.make("worker_died", why=why)
            else:
                reason = reasons.make("worker_lost", why=why)
        if slot.task_id is None:
            return
        current = (slot.task_id, slot.attempt)
        others = reasons.make("worker_lost", why=why) if failed else reason
        # A bundle: the chunks before the current one ended in the worker but their facts are lost with it, those
        # after it never began; each is requeued and counts against nothing.
        for task_id, number in [current] + [one for one in slot.call if one != current]:
            attempts.worker_lost(
                s,
                task_id,
                number,
                reason if (task_id, number) == current else others,
                failed and (task_id, number) == current,
                self.clock.now(),
                self.policy,
                self.store_waits,
                self.clock.monotonic(),
            )

    def _lose(self, slot: Slot, why: str, died: bool = False) -> None:
        """Settle a lost slot's chunk in its own transaction and replace its actor (outside a pass's batch)."""
        log.warning("worker %s lost while rendering %s: %s", slot.name, slot.task_id, why)
        with self.db.session() as s:
            self._worker_lost(s, slot, why, died)
        self.pool.replace(slot)

    def _send_polls(self) -> None:
        now = self.clock.monotonic()
        for slot in self.pool.slots:
            if (
                slot.task_id is not None
                and slot.poll_ref is None
                and now - slot.poll_sent_at >= self.config.poll_interval_s
            ):
                slot.poll_ref = slot.actor.poll.remote()
                slot.poll_sent_at = now

    # ---- requests -----------------------------------------------------------------------------------------
    def _carry_out_requests(self, s: Session) -> bool:
        """Stop the running chunks of jobs being canceled, paused with ``--now``, or already over (a failed
        chunk failed the job); settle such jobs that hold no slot any more."""
        busy = [slot for slot in self.pool.slots if slot.task_id is not None]
        busy_jobs = {slot.job_id for slot in busy}
        happened = False
        stopping = list(
            s.scalars(
                select(Job).where(
                    Job.status.in_([JobStatus.CANCEL_REQUESTED, JobStatus.PAUSE_REQUESTED])
                    | (Job.id.in_(busy_jobs) & Job.status.in_(list(JOB_TERMINAL)))
                )
            )
        )
        for job in stopping:
            holding = [slot for slot in busy if slot.job_id == job.id]
            plain_pause = job.status == JobStatus.PAUSE_REQUESTED and not job.pause_now
            for slot in [] if plain_pause else holding:  # a plain pause lets running chunks finish
                happened |= self._stop(slot)
            if not holding:
                happened |= control.settle_unheld(s, job, self.clock.now())
        return self._stop_unwanted(s, busy) or happened

    def _stop_unwanted(self, s: Session, busy: list[Slot]) -> bool:
        """Issue 16: stop renders whose chunk was requeued or canceled by hand (``farm.lifecycle.control``): the
        slot holds an attempt that is no longer its chunk's current one."""
        waiting = {task_id: (slot, number) for slot in busy for task_id, number in self._not_stopped(slot)}
        if not waiting:
            return False
        current = {
            str(task_id): (TaskStatus(status), int(number))
            for task_id, status, number in s.execute(
                select(Task.id, Task.status, Task.attempts).where(Task.id.in_(list(waiting)))
            )
        }
        stopped = False
        for task_id, (slot, sent) in waiting.items():
            status, number = current.get(task_id, (TaskStatus.CANCELED, -1))
            # A slot's attempt 0 names none (it was not handed out by ``_assign``): judged by the status alone.
            if status not in TASK_IN_FLIGHT or (sent and number != sent):
                log.info("worker %s: stopping %s attempt %d (requeued or canceled)", slot.name, task_id, sent)
                stopped |= self._stop(slot, {task_id})
        return stopped

    @staticmethod
    def _not_stopped(slot: Slot) -> list[tuple[str, int]]:
        """The slot's chunks the worker has not finished and was not told to stop: the current one, then the rest
        of its bundle."""
        if slot.task_id is None:
            return []
        current = [] if slot.cancel_sent else [(slot.task_id, slot.attempt)]
        return current + [(task_id, n) for task_id, n in slot.queued if task_id not in slot.stopping]

    def _stop(self, slot: Slot, only: set[str] | None = None) -> bool:
        """Tell the slot's worker to stop its chunks (all of them, or ``only`` those); True if any was told."""
        told = False
        for task_id, _number in self._not_stopped(slot):
            if only is not None and task_id not in only:
                continue
            slot.actor.cancel.remote(task_id)
            slot.stopping.add(task_id)
            if task_id == slot.task_id:
                slot.cancel_sent = True
            told = True
        return told

    # ---- leases, nodes, reasons ---------------------------------------------------------------------------
    def _check_leases(self) -> bool:
        """Kill attempts whose lease expired (``scheduler.leases``); a worker that ignores the kill loses its
        actor."""
        now = self.clock.monotonic()
        happened = False
        for slot in list(self.pool.slots):
            if slot.task_id is None:
                continue
            state = leases.verdict(
                now,
                slot.lease_renewed,
                is_new=slot.lease_for != (slot.task_id, slot.attempt),
                killed_at=slot.kill_sent_at if slot.kill_reason else None,
                timeout_s=self.config.task_timeout_s,
                grace_s=self.config.kill_grace_s,
            )
            if state is leases.Lease.NEW:
                slot.lease_for, slot.lease_renewed = (slot.task_id, slot.attempt), now
            elif state is leases.Lease.IGNORED:
                self._lose(slot, "did not stop after its lease expired")
                happened = True
            elif state is leases.Lease.EXPIRED:
                slot.kill_reason = leases.expired_reason(self.config.task_timeout_s)
                slot.kill_sent_at, slot.kill_for = now, (slot.task_id, slot.attempt)
                log.warning("worker %s: %s (task %s)", slot.name, slot.kill_reason, slot.task_id)
                slot.cancel_sent = False  # told again, with the rest of its bundle (which is requeued)
                self._stop(slot)
                happened = True
        return happened

    def _node_gone(self, slot: Slot) -> bool:
        """Whether the slot's node has left, asking Ray now (the tracker's view may be a second old)."""
        if not slot.node_id or self.nodes is None:
            return False
        return not self.node_view.alive(slot.node_id, fresh=True)

    def _sync_nodes(self) -> bool:
        """Follow nodes joining (new slots) and leaving (their chunks are requeued at once), and slots warming."""
        happened = False
        if self.nodes is not None:
            for slot in self.nodes.sync():
                if slot.task_id is not None:
                    self._lose(slot, "its node left the cluster")  # requeues, then replaces (or drops) the slot
                else:
                    self.pool.remove(slot)
                happened = True
        happened |= self.pool.poll_warm()
        return happened

    def _explain_waiting(self) -> None:
        """Give queued jobs that no slot can take a reason that says why (and what to do); fail those that no
        node may take any more."""
        mono = self.clock.monotonic()
        if mono - self._explained_at < self.config.explain_interval_s:
            return
        self._explained_at = mono
        ready = [slot for slot in self.pool.slots if slot.ready]
        store_jobs = self.store_waits.jobs(mono)
        with self.db.session() as s:
            for job in list(
                s.scalars(
                    select(Job).where(
                        Job.status.in_([JobStatus.QUEUED, JobStatus.ACTIVE]),
                        Job.tasks_runnable > 0,
                        Job.wait != "job",  # issue 19: its reason says which job it waits for
                    )
                )
            ):
                needs = placement.Needs.of(JobSettings.of(job.settings))
                reason = placement.why_waiting(ready, needs, blocklist.blocked_nodes(s, job.id), job.id)
                if reason.startswith(NO_NODE_LEFT):
                    attempts.fail_unplaceable(s, job, reason, self.clock.now())
                elif reason and job.status_reason != reason:
                    job.status_reason = reason
                    log.info("job %s: %s", job.id, reason)
                elif not reason and job.status_reason.startswith(WAITING) and job.id not in store_jobs:
                    job.status_reason = ""

    # ---- dispatch -----------------------------------------------------------------------------------------
    def _dispatch(self, s: Session, refresh_waits: bool = True) -> list[tuple[Slot, list[Assignment]]]:
        """Hand runnable chunks to idle slots (fair share, placement, claims), several short ones of a job to a
        slot at once (``scheduler.bundles``); the caller sends them. ``refresh_waits``: recompute what jobs with
        dependencies wait for first."""
        idle = self.pool.idle()
        if not idle:
            return []
        now, mono = self.clock.now(), self.clock.monotonic()
        ready = [slot for slot in self.pool.slots if slot.ready]
        handed: list[tuple[Slot, list[Assignment]]] = []
        blocked: dict[str, set[str]] = {}
        free = len(idle)

        def bundle(job: Job) -> int:
            estimate = self.chunk_times.estimate(job.id)
            return bundles.size(estimate, job.tasks_runnable, free, self.config.bundle_s, self.config.bundle_max)

        # Fair share between companies, caps and budgets decide the order (scheduler.fairshare).
        rows = self.fair_share.round(s, self.pool.slots, idle, now, refresh_waits=refresh_waits, bundle=bundle)
        for task, job in rows:
            if self.store_waits.blocked(task.id, mono):
                continue  # waiting out a store outage
            if job.id not in blocked:
                blocked[job.id] = blocklist.blocked_nodes(s, job.id)
            needs = placement.Needs.of(JobSettings.of(job.settings))
            failed_on = self._failed_on(s, task) if task.failures else set()
            slot = placement.pick_slot(idle, ready, needs, blocked[job.id], failed_on)
            if slot is None:
                continue
            if not claims.claim(s, job, task):  # PostgreSQL: locked or taken by another process meanwhile
                continue
            idle.remove(slot)
            chunks = [task]
            extra = bundle(job) - 1 if slot.bundles and not task.failures else 0
            for more in rows.more_of(job, extra) if extra > 0 else []:
                # A chunk that failed before goes alone (its retry is judged alone); so does one waiting out an
                # outage. The others are claimed like the first.
                if not more.failures and not self.store_waits.blocked(more.id, mono) and claims.claim(s, job, more):
                    chunks.append(more)
            rows.taken(job, slot, len(chunks))
            handed.append((slot, self._assign(s, slot, job, chunks, now)))
            if not idle:
                break
        return handed

    @staticmethod
    def _failed_on(s: Session, task: Task) -> set[str]:
        return set(
            s.scalars(
                select(TaskAttempt.node).where(TaskAttempt.task_id == task.id, TaskAttempt.status == Outcome.FAILED)
            )
        )

    def _assign(self, s: Session, slot: Slot, job: Job, tasks: list[Task], now: Any) -> list[Assignment]:
        """Give ``slot`` the chunks (one, or a bundle of one job), each with an attempt of its own."""
        if job.status == JobStatus.QUEUED:
            set_job_status(job, JobStatus.ACTIVE, now)
        out = []
        for task in tasks:
            set_task_status(task, TaskStatus.DISPATCHED, now, f"to {slot.name}", job)
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
            grant = self.grants(job.company_id, job.id, job.manifest, len(task.frames)) if self.grants else None
            out.append(
                Assignment(
                    job_id=job.id,
                    task_id=task.id,
                    attempt=task.attempts,
                    company_id=job.company_id,
                    blend_file=job.blend_file,
                    manifest=job.manifest,
                    frames=list(task.frames),
                    settings=dict(job.settings),
                    grant=grant,
                )
            )
        # farm_dispatch_chunks_per_call: one observation per call, of the chunks it carries
        tallies.observe(s, tallies.CHUNKS_PER_CALL, job.company_id, [float(len(tasks))])
        first = tasks[0]
        slot.task_id, slot.job_id, slot.attempt, slot.cancel_sent = first.id, job.id, first.attempts, False
        slot.call = [(a.task_id, a.attempt) for a in out]
        return out

    def _prune_job_folders(self) -> None:
        """Tell each worker which of the jobs it rendered have ended, so it removes their folders."""
        mono = self.clock.monotonic()
        if mono - self._pruned_at < self.config.prune_interval_s or not self._jobs_seen:
            return
        self._pruned_at = mono
        seen = set().union(*self._jobs_seen.values())
        with self.db.session() as s:
            live = set(s.scalars(select(Job.id).where(Job.id.in_(seen), Job.status.not_in(list(JOB_TERMINAL)))))
        ended = seen - live
        if not ended:
            return
        for slot in self.pool.slots:
            drop = sorted(self._jobs_seen.get(slot.name, set()) & ended)
            if drop and slot.ready:
                slot.actor.drop_jobs.remote(drop)  # fire and forget: a slot that misses it cleans up at start
                self._jobs_seen[slot.name] -= set(drop)
