"""What a job waits for: the jobs it runs after (``farm submit --after``), kept in the database.

``Job.wait`` tells the dispatcher's candidate query what to skip without reading the dependencies:

* ``"job"``: no chunk may start: an upstream job has not completed, or it failed or was canceled. A failed or
  canceled upstream *holds* the job (status queued, reason ``held: …``) rather than failing it: retrying the
  upstream (``farm retry``) releases the chain, as a pipeline TD expects; canceling the held job ends it.
* ``"frames"``: ``--frame-match``: each chunk waits until its frames are stored by every upstream job that renders
  them (``ready_tasks``); frames an upstream does not render wait for nothing.
* ``""``: nothing to wait for.

``refresh`` recomputes ``wait`` and the visible reason of the jobs that wait, from the upstream jobs' statuses;
the dispatch round calls it, so the state survives any restart and costs one indexed query when nothing waits.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from farm.db.models import Frame, Job, JobDependency, Task
from farm.domain import reasons
from farm.domain.frames import parse_frames
from farm.domain.states import JOB_TERMINAL, JobStatus

log = logging.getLogger(__name__)

WAIT_NONE, WAIT_JOB, WAIT_FRAMES = "", "job", "frames"
WAITING_FOR = "waiting for "
HELD = "held: "
_OURS = (WAITING_FOR + "job", WAITING_FOR + "frames", HELD + "job")


def _label(job: Job) -> str:
    return f"{job.id} ({job.name})"


def decide(edges: Sequence[tuple[Job, bool]]) -> tuple[str, str]:
    """(wait, reason) of a job from its upstream jobs and whether each is frame-matched: pure, no I/O."""
    stopped = [up for up, _ in edges if JobStatus(up.status) in (JobStatus.FAILED, JobStatus.CANCELED)]
    if stopped:
        first = stopped[0]
        held = "held_failed" if JobStatus(first.status) is JobStatus.FAILED else "held_canceled"
        return WAIT_JOB, reasons.make(held, job=_label(first), id=first.id)
    whole = [up for up, match in edges if not match and JobStatus(up.status) is not JobStatus.COMPLETED]
    if whole:
        return WAIT_JOB, reasons.make("waiting_job", jobs=", ".join(_label(up) for up in whole))
    frames = [up for up, match in edges if match and JobStatus(up.status) is not JobStatus.COMPLETED]
    if frames:
        return WAIT_FRAMES, reasons.make("waiting_frames", jobs=", ".join(_label(up) for up in frames))
    return WAIT_NONE, ""


def apply(job: Job, wait: str, reason: str) -> None:
    """Write the decision; the reason only where it is empty or ours (a pause or quota reason stays)."""
    if job.wait != wait:
        log.info("job %s: wait %r -> %r%s", job.id, job.wait, wait, f" ({reason})" if reason else "")
        job.wait = wait
    if JobStatus(job.status) in JOB_TERMINAL:
        return
    mine = not job.status_reason or job.status_reason.startswith(_OURS)
    if mine and job.status_reason != reason:
        job.status_reason = reason


def refresh(session: Session, job_ids: Iterable[str] | None = None) -> int:
    """Recompute what waiting jobs (or ``job_ids``) wait for; returns how many changed their ``wait``."""
    query = select(Job).where(Job.wait.in_((WAIT_JOB, WAIT_FRAMES)))
    if job_ids is not None:
        query = select(Job).where(Job.id.in_(list(job_ids)))
    waiting = list(session.scalars(query))
    if not waiting:
        return 0
    edges: dict[str, list[tuple[str, bool]]] = {}
    for dep in session.scalars(select(JobDependency).where(JobDependency.job_id.in_([j.id for j in waiting]))):
        edges.setdefault(dep.job_id, []).append((dep.depends_on, dep.frame_match))
    ups = {
        up.id: up for up in session.scalars(select(Job).where(Job.id.in_({u for e in edges.values() for u, _ in e})))
    }
    changed = 0
    for job in waiting:
        before = job.wait
        if JobStatus(job.status) in JOB_TERMINAL:
            apply(job, WAIT_NONE, "")
        else:
            wait, reason = decide([(ups[u], match) for u, match in edges.get(job.id, []) if u in ups])
            apply(job, wait, reason)
        changed += job.wait != before
    return changed


class FrameGate:
    """Which chunks of ``frames``-waiting jobs may start: each of their frames is stored by every frame-matched
    upstream that renders it. Upstream frame sets are parsed once per job and kept."""

    def __init__(self) -> None:
        self._frames: dict[str, frozenset[int]] = {}

    def _upstream_frames(self, up: Job) -> frozenset[int]:
        known = self._frames.get(up.id)
        if known is None:
            known = self._frames[up.id] = frozenset(parse_frames(up.frames))
        return known

    def ready_tasks(self, session: Session, job: Job, tasks: Sequence[Task]) -> list[Task]:
        """The chunks among ``tasks`` whose frames are all stored upstream (one query over those frames)."""
        if not tasks:
            return []
        ups = list(
            session.scalars(
                select(Job)
                .join(JobDependency, JobDependency.depends_on == Job.id)
                .where(JobDependency.job_id == job.id, JobDependency.frame_match.is_(True))
            )
        )
        needed = {
            (up.id, frame)
            for up in ups
            if JobStatus(up.status) is not JobStatus.COMPLETED
            for task in tasks
            for frame in task.frames
            if frame in self._upstream_frames(up)
        }
        if not needed:
            return list(tasks)
        done: set[tuple[str, int]] = set()
        pairs = sorted(needed)
        for start in range(0, len(pairs), 500):  # bounded parameter lists on every database
            done.update(
                (str(j), int(f))
                for j, f in session.execute(
                    select(Frame.job_id, Frame.frame).where(
                        tuple_(Frame.job_id, Frame.frame).in_(pairs[start : start + 500])
                    )
                )
            )
        return [task for task in tasks if all(pair in done for pair in needed if pair[1] in task.frames)]
