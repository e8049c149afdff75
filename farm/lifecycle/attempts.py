"""The consequences of an attempt: frames it stored, how it ended, a worker lost under it, a restart.

Typed events in (``AttemptFacts`` and ``StoredFrame`` from the worker, a lost worker, a restart), changes applied to
the rows of one transaction through ``farm.lifecycle.transitions``; the verdict itself is the pure
``farm.lifecycle.outcomes.decide``. The scheduler owns the loop, Ray and the slots; nothing here knows of them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from farm.contract import ChunkFailurePolicy, JobSettings
from farm.db import deferred
from farm.db.models import Frame, Job, Task, TaskAttempt
from farm.domain import reasons
from farm.domain.attempts import AttemptFacts, Fault, Outcome, StoredFrame
from farm.domain.frames import format_frames
from farm.domain.states import JOB_TERMINAL, TASK_IN_FLIGHT, TASK_RUNNABLE, JobStatus, TaskStatus
from farm.lifecycle import blocklist, notify, tallies
from farm.lifecycle.outcomes import LOST_LIMIT, Verdict, decide
from farm.lifecycle.transitions import set_job_status, set_task_status, settle_job
from farm.metering import ledger

log = logging.getLogger(__name__)

WAITING = "waiting: "


@dataclass
class StoreWaits:
    """Chunks waiting out a store outage: task id -> (consecutive outages, monotonic time of the next try, job).
    Kept in the scheduler's memory: after a restart the chunks simply try again at once."""

    waits: dict[str, tuple[int, float, str]] = field(default_factory=dict)

    def count(self, task_id: str) -> int:
        return self.waits.get(task_id, (0, 0.0, ""))[0]

    def blocked(self, task_id: str, monotonic: float) -> bool:
        """Whether the chunk must still wait before its next try."""
        return self.waits.get(task_id, (0, 0.0, ""))[1] > monotonic

    def jobs(self, monotonic: float) -> set[str]:
        """Jobs with a chunk waiting for the store now."""
        return {job_id for _, until, job_id in self.waits.values() if until > monotonic}


@dataclass(frozen=True)
class Policy:
    """What the entry point decided from the settings."""

    blocklist_after: int = blocklist.DEFAULT_THRESHOLD


_PRELOADED = "farm.lifecycle.preloaded"
_IN_SLICE = 2000


@dataclass(frozen=True)
class _Inserted:
    """A frame row this transaction inserts with one statement for the pass (``farm.db.deferred``), not as an ORM
    object: what checking the chunk's frames reads of it."""

    task_id: str
    sha256: str
    layers: list[dict[str, object]] | None


@dataclass
class _Preloaded:
    attempts: dict[tuple[str, int], TaskAttempt]
    frames: dict[tuple[str, int], Frame | _Inserted | None]
    rows: list[object]  # the session's identity map holds rows weakly: these stay loaded for the batch
    settings: dict[str, JobSettings] = field(default_factory=dict)  # by job: read once per pass, not per chunk


def preload(s: Session, task_ids: Iterable[str], lock_jobs: bool = False) -> None:
    """Read the rows a batch of reports on ``task_ids`` will touch in a fixed number of queries (tasks, jobs,
    attempts, frames), so applying each report asks the database nothing more; ``lock_jobs``: ``FOR UPDATE``
    on the jobs (PostgreSQL)."""
    ids = sorted(set(task_ids))
    if not ids:
        return
    tasks = list(s.scalars(select(Task).where(Task.id.in_(ids))))
    job_ids = sorted({task.job_id for task in tasks})
    query = select(Job).where(Job.id.in_(job_ids)).order_by(Job.id)
    jobs = list(s.scalars(query.with_for_update() if lock_jobs else query))
    attempts = {(a.task_id, a.number): a for a in s.scalars(select(TaskAttempt).where(TaskAttempt.task_id.in_(ids)))}
    wanted = {(task.job_id, frame) for task in tasks for frame in task.frames}
    frames: dict[tuple[str, int], Frame | _Inserted | None] = dict.fromkeys(wanted)
    numbers = sorted({f for _, f in wanted})
    # In slices: chunks of up to 10,000 frames on 8 slots would pass the databases' bound-parameter limits.
    for start in range(0, len(numbers), _IN_SLICE):
        part = numbers[start : start + _IN_SLICE]
        for row in s.scalars(select(Frame).where(Frame.job_id.in_(job_ids), Frame.frame.in_(part))):
            if (row.job_id, row.frame) in frames:
                frames[(row.job_id, row.frame)] = row
    s.info[_PRELOADED] = _Preloaded(attempts, frames, [*tasks, *jobs])


def _frame(s: Session, job_id: str, frame: int) -> Frame | _Inserted | None:
    loaded: _Preloaded | None = s.info.get(_PRELOADED)
    if loaded is not None and (job_id, frame) in loaded.frames:
        return loaded.frames[(job_id, frame)]
    if deferred.pending(s):
        deferred.write(s)  # a frame row of this transaction not sent yet is found
    return s.get(Frame, (job_id, frame))


def _settings(s: Session, job: Job) -> JobSettings:
    """The job's settings, validated once per pass when the pass preloaded its rows."""
    loaded: _Preloaded | None = s.info.get(_PRELOADED)
    if loaded is None:
        return JobSettings.of(job.settings)
    known = loaded.settings.get(job.id)
    if known is None:
        known = loaded.settings[job.id] = JobSettings.of(job.settings)
    return known


def record_frames(s: Session, task: Task, attempt: int, events: Iterable[StoredFrame], now: datetime) -> int:
    """Record frames the attempt stored; returns how many. Only this attempt's frames of this chunk count; a
    frame row never moves from one chunk to another."""
    wanted = set(task.frames)
    recorded = 0
    job = s.get(Job, task.job_id)
    seconds: dict[str, list[float]] = {}  # render times by device, for the totals /metrics reads (issue 15)
    first_time = 0
    had_frames = job is None or job.last_frame_at is not None  # issue 19: the first_frame event, once per job
    for ev in events:
        if ev.task_id != task.id or ev.attempt != attempt or ev.frame not in wanted:
            log.error(
                "task %s attempt %d: refused a frame event of task %s attempt %s frame %s",
                task.id,
                attempt,
                ev.task_id,
                ev.attempt,
                ev.frame,
            )
            continue
        found = _frame(s, task.job_id, ev.frame)
        loaded: _Preloaded | None = s.info.get(_PRELOADED)
        layers = [asdict(layer) for layer in ev.layers] or None  # one file per view layer: each file, the first too
        if found is None:
            # A new row, the common case: one INSERT for all of the pass's new frames (farm.db.deferred).
            if job is not None:
                job.frames_done += 1
                job.frames_bytes = int(job.frames_bytes or 0) + int(ev.size or 0)
                job.last_frame_at = now
            first_time += 1
            new_row = {
                "job_id": task.job_id,
                "frame": ev.frame,
                "task_id": task.id,
                "key": ev.key,
                "name": ev.name,
                "size": ev.size,
                "sha256": ev.sha256,
                "device": ev.device,
                "render_seconds": ev.seconds,
                "created_at": now,
                "layers": layers,
            }
            deferred.insert_later(s, Frame.__table__, new_row)
            if loaded is not None:
                loaded.frames[(task.job_id, ev.frame)] = _Inserted(task.id, ev.sha256, layers)
            recorded += 1
            seconds.setdefault(str(ev.device or "").lower(), []).append(float(ev.seconds or 0.0))
            continue
        if isinstance(found, _Inserted):  # inserted earlier in this pass: read back as a row to change
            deferred.write(s)
            row = s.get(Frame, (task.job_id, ev.frame))
        else:
            row = found
        if row is None:  # cannot happen: the insert was sent before the read
            continue
        if loaded is not None:
            loaded.frames[(task.job_id, ev.frame)] = row
        if row.task_id != task.id:
            log.error(
                "job %s frame %d belongs to task %s, not %s: refused", task.job_id, ev.frame, row.task_id, task.id
            )
            continue
        old_size = int(row.size or 0)
        row.key, row.name, row.size, row.sha256 = ev.key, ev.name, ev.size, ev.sha256
        row.device, row.render_seconds, row.created_at = ev.device, ev.seconds, now
        row.layers = layers
        recorded += 1
        seconds.setdefault(str(ev.device or "").lower(), []).append(float(ev.seconds or 0.0))
        if job is not None:
            job.frames_bytes = int(job.frames_bytes or 0) + int(ev.size or 0) - old_size
            job.last_frame_at = now
    if job is not None and recorded:
        if not had_frames:
            notify.emit(s, job, "first_frame", now)
        tallies.observe(s, tallies.FRAMES_RENDERED, job.company_id, [1.0] * first_time)
        for device, values in seconds.items():
            tallies.observe(s, tallies.FRAME_RENDER_SECONDS, job.company_id, values, label=device)
    return recorded


def missing_frames(s: Session, task: Task) -> list[int]:
    """Frames of the chunk with no stored file (size and sha256) recorded for it."""
    missing = []
    for frame in task.frames:
        row = _frame(s, task.job_id, frame)
        if row is None or row.task_id != task.id or not row.sha256:
            missing.append(frame)
        elif row.layers and not all(layer.get("sha256") and layer.get("key") for layer in row.layers):
            missing.append(frame)
    return missing


def _attempt_row(s: Session, task_id: str, number: int) -> TaskAttempt | None:
    loaded: _Preloaded | None = s.info.get(_PRELOADED)
    if loaded is not None and (task_id, number) in loaded.attempts:
        return loaded.attempts[(task_id, number)]
    return s.scalar(select(TaskAttempt).where(TaskAttempt.task_id == task_id, TaskAttempt.number == number))


def attempt_ended(
    s: Session, facts: AttemptFacts, now: datetime, policy: Policy, waits: StoreWaits, monotonic: float
) -> Job | None:
    """Apply a finished attempt: its frames, its row, its metering, the verdict. Returns the job when it just
    completed (so the caller can run completion hooks after the commit)."""
    task = s.get(Task, facts.task_id)
    job = s.get(Job, task.job_id) if task is not None else None
    if task is None or job is None:
        return None
    record_frames(s, task, facts.attempt, facts.frames, now)
    outcome = facts.outcome
    attempt = _attempt_row(s, task.id, facts.attempt)
    reason = reasons.from_worker(facts.reason)  # issue 16: the worker's "frame N: …" as a code
    started = datetime.fromtimestamp(facts.started_at, UTC)
    ended = datetime.fromtimestamp(facts.ended_at, UTC)
    if attempt is not None:
        attempt.status = outcome.value
        attempt.started_at, attempt.ended_at = started, ended
        attempt.seconds, attempt.blender_seconds = facts.seconds, facts.blender_seconds
        attempt.exit_code, attempt.reason = facts.exit_code, reason
        attempt.log_tail = facts.log_tail[-16_000:]
        attempt.node = facts.node or attempt.node
        attempt.fault = facts.fault.value if outcome is Outcome.FAILED else ""
        attempt.warning = facts.warning[:4000]
    if facts.warning and not job.warning:
        job.warning = facts.warning[:4000]
    for resource, count in facts.resources.items():
        if count > 0:
            ledger.append(
                s,
                ledger.Usage(
                    company_id=job.company_id,
                    job_id=job.id,
                    task_id=task.id,
                    attempt=facts.attempt,
                    node=facts.node,
                    resource=resource,
                    count=float(count),
                    started_at=started,
                    ended_at=ended,
                    seconds=facts.seconds,
                    outcome=outcome.value,
                ),
            )
    fault = facts.fault if facts.fault is not Fault.NONE or outcome is not Outcome.FAILED else Fault.NODE
    if facts.attempt != task.attempts:
        return None  # issue 16: the chunk was requeued by hand meanwhile; the report changes only its attempt's row
    was_completed = job.status == JobStatus.COMPLETED
    settle_attempt(s, job, task, outcome, fault, reason, now, attempt, policy, waits, monotonic)
    settle_job(s, job, now)
    return job if not was_completed and job.status == JobStatus.COMPLETED else None


def worker_lost(
    s: Session,
    task_id: str,
    number: int,
    reason: str,
    failed: bool,
    now: datetime,
    policy: Policy,
    waits: StoreWaits,
    monotonic: float,
) -> None:
    """The worker under an attempt is gone: a failure of the node when ``failed`` (the process died on a live
    node, or ignored the kill after its lease expired), otherwise a loss that counts against nothing, unless the
    chunk's last ``LOST_LIMIT`` attempts were all lost: then it counts against the chunk (never the node)."""
    task = s.get(Task, task_id)
    if task is None:
        return
    attempt = _attempt_row(s, task.id, number)
    if attempt is not None:
        attempt.status, attempt.ended_at = (Outcome.FAILED if failed else Outcome.LOST).value, now
        attempt.reason = reason
        attempt.fault = Fault.NODE.value if failed else ""
    job = s.get(Job, task.job_id)
    # Issue 16: a worker lost under an attempt of a chunk requeued by hand meanwhile changes only that attempt.
    if job is not None and TaskStatus(task.status) in TASK_IN_FLIGHT and number == task.attempts:
        outcome, fault = (Outcome.FAILED, Fault.NODE) if failed else (Outcome.LOST, Fault.NONE)
        settle_attempt(s, job, task, outcome, fault, reason, now, attempt, policy, waits, monotonic)
        settle_job(s, job, now)


def settle_attempt(
    s: Session,
    job: Job,
    task: Task,
    outcome: Outcome,
    fault: Fault,
    reason: str,
    now: datetime,
    attempt: TaskAttempt | None,
    policy: Policy,
    waits: StoreWaits,
    monotonic: float,
) -> None:
    """Apply the verdict on an attempt (``farm.lifecycle.outcomes.decide``) to its chunk, job and node."""
    if TaskStatus(task.status) not in TASK_IN_FLIGHT:
        return
    job_status = JobStatus(job.status)
    if outcome is not Outcome.COMPLETED and (job_status is JobStatus.CANCEL_REQUESTED or job_status in JOB_TERMINAL):
        set_task_status(task, TaskStatus.CANCELED, now, f"job {job_status.value}")
        return
    count = waits.count(task.id) + 1 if fault is Fault.STORAGE else 0
    number = attempt.number if attempt is not None else task.attempts
    lost = lost_in_a_row(s, task.id, number) if outcome is Outcome.LOST else 0
    verdict = decide(
        outcome,
        fault,
        reason,
        failures_before=task.failures,
        max_attempts=_settings(s, job).max_attempts,
        missing_frames=missing_frames(s, task) if outcome is Outcome.COMPLETED else [],
        storage_waits=count,
        lost_in_a_row=lost,
    )
    _apply(s, job, task, verdict, now, attempt, policy, waits, count, monotonic)


def lost_in_a_row(s: Session, task_id: str, number: int) -> int:
    """How many of the chunk's attempts just before attempt ``number`` ended lost, up to ``LOST_LIMIT``."""
    count = 0
    for status in s.scalars(
        select(TaskAttempt.status)
        .where(TaskAttempt.task_id == task_id, TaskAttempt.number < number)
        .order_by(TaskAttempt.number.desc())
        .limit(LOST_LIMIT)
    ):
        if status != Outcome.LOST:
            break
        count += 1
    return count


def _apply(
    s: Session,
    job: Job,
    task: Task,
    verdict: Verdict,
    now: datetime,
    attempt: TaskAttempt | None,
    policy: Policy,
    waits: StoreWaits,
    count: int,
    monotonic: float,
) -> None:
    if attempt is not None and attempt.status == Outcome.COMPLETED and verdict.task is not TaskStatus.COMPLETED:
        # The worker said "completed" but frames are missing: the attempt failed, and says which frames.
        attempt.status, attempt.fault, attempt.reason = Outcome.FAILED.value, Fault.NODE.value, verdict.reason
    elif attempt is not None and attempt.status == Outcome.LOST and verdict.counts_against_chunk:
        # Lost once too often in a row (LOST_LIMIT): this loss is a failed attempt, whose fault nobody knows.
        attempt.status, attempt.fault, attempt.reason = Outcome.FAILED.value, Fault.NONE.value, verdict.cause
    if verdict.retry_after_s:
        waits.waits[task.id] = (count, monotonic + verdict.retry_after_s, job.id)
        job.status_reason = reasons.make("waiting", reason=verdict.reason)  # the text starts with WAITING
    else:
        waits.waits.pop(task.id, None)
    if verdict.counts_against_chunk:
        task.failures += 1
    if verdict.counts_against_node:
        blocklist.record_failure(
            s,
            job.id,
            attempt.node if attempt is not None else "",
            verdict.reason,
            now,
            policy.blocklist_after,
            task_id=task.id,
            attempt=attempt.number if attempt is not None else None,
        )
    set_task_status(task, verdict.task, now, verdict.reason, job)
    fail_the_job = _settings(s, job).on_chunk_failure is ChunkFailurePolicy.FAIL_JOB
    if verdict.task is TaskStatus.FAILED and fail_the_job:
        fail_job(s, job, task, verdict.cause or verdict.reason, now)
    if JobStatus(job.status) not in JOB_TERMINAL and job.tasks_failed > 0:
        # A job with a failed chunk can only end failed: settle it here, where the reason is known.
        settle_job(s, job, now)
        if job.status == JobStatus.FAILED:
            job.status_reason = failure_summary(s, job)


def failure_summary(s: Session, job: Job) -> str:
    """Why the job failed, in one line: how many chunks, the first one's frames and last reason, blocked nodes."""
    failed = list(
        s.scalars(
            select(Task).where(Task.job_id == job.id, Task.status == TaskStatus.FAILED).order_by(Task.index).limit(1)
        )
    )
    counts = {"failed": job.tasks_failed, "total": job.tasks_total}
    text = reasons.make("chunks_failed", **counts)
    if failed:
        first = failed[0]
        last = s.scalar(
            select(TaskAttempt)
            .where(TaskAttempt.task_id == first.id, TaskAttempt.status == Outcome.FAILED)
            .order_by(TaskAttempt.number.desc())
            .limit(1)
        )
        chunk = {"chunk": first.index, "frames": format_frames(first.frames)}
        text = reasons.make("summary_chunk", **counts, **chunk)
        if last is not None:
            last_reason = reasons.restore(last.reason, last.reason_code, last.reason_params)
            text = reasons.make(
                "summary_attempt", **counts, **chunk, attempts=first.failures, node=last.node or "?", reason=last_reason
            )
    blocked = sorted(blocklist.blocked_nodes(s, job.id))
    if blocked:
        text = reasons.make("pair", first=text, second=reasons.make("blocklisted", nodes=", ".join(blocked)))
    return text


def fail_job(s: Session, job: Job, task: Task, reason: str, now: datetime) -> None:
    """``on_chunk_failure: fail-job``: the job fails now; its other chunks are canceled (running ones are stopped
    by the scheduler, and frames they already stored are kept)."""
    why = reasons.make(
        "chunk_failed", chunk=task.index, frames=format_frames(task.frames), failures=task.failures, reason=reason
    )
    for other in s.scalars(
        select(Task).where(
            Task.job_id == job.id,
            Task.id != task.id,
            Task.status.in_([*TASK_RUNNABLE, TaskStatus.PAUSED]),
        )
    ):
        set_task_status(other, TaskStatus.CANCELED, now, "job failed")
    set_job_status(job, JobStatus.FAILED, now, why)


def fail_unplaceable(s: Session, job: Job, reason: str, now: datetime) -> bool:
    """Every node that could take the job is blocklisted for it: rather than sit "rendering" forever, the job
    fails and says so, once no chunk of it is rendering. ``farm unblock`` (CLI or monitor) runs it again."""
    if job.tasks_in_flight:
        return False
    for task in s.scalars(select(Task).where(Task.job_id == job.id, Task.status.in_(list(TASK_RUNNABLE)))):
        set_task_status(task, TaskStatus.FAILED, now, reason)
    set_job_status(job, JobStatus.FAILED, now, reason)  # the column keeps 4000 characters
    return True


def recover(s: Session, now: datetime) -> int:
    """After a restart no chunk is in flight (the old workers died with the old scheduler): requeue those the
    database thinks are running. Their attempts are marked lost, which counts against neither the chunk nor the
    node; frames already stored stay, and a re-render overwrites them under the same key."""
    count = 0
    touched: set[str] = set()
    for task in s.scalars(select(Task).where(Task.status.in_(list(TASK_IN_FLIGHT)))):
        for attempt in s.scalars(
            select(TaskAttempt).where(TaskAttempt.task_id == task.id, TaskAttempt.ended_at.is_(None))
        ):
            attempt.status, attempt.ended_at = Outcome.LOST.value, now
            attempt.reason = reasons.make("scheduler_restarted")
        job = s.get(Job, task.job_id)
        if job is not None and JobStatus(job.status) in JOB_TERMINAL:
            set_task_status(task, TaskStatus.CANCELED, now, f"job {job.status}")
        else:
            set_task_status(task, TaskStatus.QUEUED, now, "requeued after scheduler restart")
        touched.add(task.job_id)
        count += 1
    waiting = (JobStatus.CANCEL_REQUESTED, JobStatus.PAUSE_REQUESTED)
    for job in s.scalars(select(Job).where((Job.status.in_(waiting)) | (Job.id.in_(touched)))):
        settle_job(s, job, now)
    if count:
        log.info("recovered %d in-flight chunk(s) after restart", count)
    return count
