"""Job operations behind the API: create (job + tasks in one transaction), read, cancel; scoped per company."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Table, func, select, true
from sqlalchemy.orm import Session

from farm.clock import new_id, utc
from farm.contract import AttemptOut, FrameLayerOut, FrameOut, JobCreate, JobOut, JobSettings, TaskOut
from farm.db import bulk
from farm.db.engine import take_sqlite_write_lock
from farm.db.models import ApiToken, Blob, Company, Frame, Job, Task, TaskAttempt, User
from farm.domain.frames import chunk_frames, format_frames, parse_frames
from farm.domain.order import in_order
from farm.domain.states import TASK_IN_FLIGHT, JobStatus, TaskStatus
from farm.errors import MissingBlobs, NotFound
from farm.lifecycle import notify
from farm.lifecycle.actions import available, chunk_available
from farm.services import dependencies, library, presets, products
from farm.services.auth import Principal
from farm.services.limits import JobLimits, check_job


def create_job(
    session: Session, who: Principal, spec: JobCreate, now: datetime, limits: JobLimits | None = None
) -> Job:
    """Validate the spec against what the company holds and the farm's limits, then write the job and one task
    per chunk."""
    spec = presets.apply(session, who, spec)  # issue 19: a named preset under the request's own settings
    frames = parse_frames(spec.frames)
    chunks = chunk_frames(in_order(frames, spec.order), spec.chunk_size)  # issue 19: --order preview
    check_job(session, who, len(spec.manifest), len(frames), len(chunks), limits or JobLimits(), now)
    wanted = sorted({entry.sha256 for entry in spec.manifest.values()})
    held = set(
        session.scalars(select(Blob.sha256).where(Blob.company_id == who.company_id, Blob.sha256.in_(wanted)))
    )
    missing = [sha for sha in wanted if sha not in held]
    shared = library.visible_owners(session, who, missing) if missing else {}  # issue 20: used by reference
    missing = [sha for sha in missing if sha not in shared]
    if missing:
        raise MissingBlobs(missing)
    job = Job(
        id=new_id("job"),
        company_id=who.company_id,
        name=spec.name,
        status=JobStatus.QUEUED.value,
        status_reason="",
        submitted_by=submitter(session, who),
        priority=spec.priority,
        frames=spec.frames,
        chunk_size=spec.chunk_size,
        blend_file=spec.blend_file,
        manifest=_manifest(spec, shared, who.company_id),
        settings=JobSettings(
            output_format=spec.output_format,
            output_pattern=spec.output_pattern,
            view_layers=tuple(spec.view_layers),
            camera=spec.camera,
            job_name=spec.name,
            resolution=spec.resolution,
            samples=spec.samples,
            gpu=spec.gpu,
            allow_cpu_fallback=spec.allow_cpu_fallback,
            max_attempts=spec.max_attempts,
            preview=spec.preview,
            on_chunk_failure=spec.on_chunk_failure,
            allow_missing=spec.allow_missing,
            order=spec.order,
            estimate_for=spec.estimate_for,
        ).model_dump(mode="json"),
        frames_total=len(frames),
        created_at=now,
        tasks_total=len(chunks),
        tasks_runnable=len(chunks),
    )
    session.add(job)
    session.flush()
    # One executemany past SQLAlchemy's per-value processing (farm.db.bulk): a 100,000-chunk job in well under a
    # second. A chunk's id is its job's with its index: unique, as (job, index) is, and no random draw per chunk.
    stem = job.id.removeprefix("job-")
    bulk.insert_many(
        session,
        cast(Table, Task.__table__),
        same={"job_id": job.id, "status": TaskStatus.QUEUED, "attempts": 0, "failures": 0, "updated_at": now},
        varying=("id", "index", "frames"),
        rows=((f"task-{stem}-{i}", i, bulk.json_int_list(chunk)) for i, chunk in enumerate(chunks)),
    )
    dependencies.link(session, who, job, spec.after, spec.frame_match)  # issue 19: --after, --frame-match
    notify.emit(session, job, "queued", now)  # issue 19: webhooks
    library.record_uses(session, job, shared, now)  # issue 20: who uses what
    return job


def submitter(session: Session, who: Principal) -> str:
    """Who a job of ``who`` is submitted by (issue 16): the token's user, else the token's name, else its id."""
    token = session.get(ApiToken, who.token_id)
    if token is None:
        return who.token_id
    user = session.get(User, token.user_id) if token.user_id else None
    return user.name if user is not None else token.name or token.id


def _manifest(spec: JobCreate, shared: dict[str, str], company_id: str) -> dict[str, dict[str, object]]:
    """The manifest as stored: library assets' entries name their publisher (``farm.domain.inputs``)."""
    manifest: dict[str, dict[str, object]] = {path: entry.model_dump() for path, entry in spec.manifest.items()}
    library.annotate(manifest, shared, company_id)
    return manifest


def get_job(session: Session, who: Principal, job_id: str, lock: bool = False) -> Job:
    """The job if the caller may see it; 404 otherwise (also for another company's job)."""
    query = select(Job).where(Job.id == job_id)
    if not who.is_platform_admin:
        query = query.where(Job.company_id == who.company_id)
    if lock:
        take_sqlite_write_lock(session, job_id)
        query = query.with_for_update().execution_options(populate_existing=True)
    job = session.scalar(query)
    if job is None:
        raise NotFound(f"job {job_id!r} not found", code="no_such_job", params={"job": job_id})
    return job


def list_jobs(
    session: Session, who: Principal, status: JobStatus | None = None, limit: int = 100, offset: int = 0
) -> list[Job]:
    """Newest first, scoped to the caller's company (platform admins see all)."""
    query = select(Job).order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)
    if not who.is_platform_admin:
        query = query.where(Job.company_id == who.company_id)
    if status is not None:
        query = query.where(Job.status == status.value)
    return list(session.scalars(query))


def job_out(session: Session, job: Job) -> JobOut:
    """The API view of a job with its progress counts."""
    return jobs_out(session, [job])[0]


def jobs_out(session: Session, jobs: list[Job]) -> list[JobOut]:
    """API views of several jobs; progress comes from the counters the lifecycle keeps on each job."""
    if not jobs:
        return []
    names: dict[str, str] = {
        str(cid): str(name)
        for cid, name in session.execute(
            select(Company.id, Company.name).where(Company.id.in_({job.company_id for job in jobs}))
        )
    }
    made = products.products_out(session, [job.id for job in jobs])  # issue 13: the video a scene asks for
    outs = [_job_out(job, names) for job in jobs]
    ups = dependencies.upstream_of(session, [job.id for job in jobs])  # issue 19
    for out in outs:
        out.product = made.get(out.id)
        out.after, out.frame_match = ups.get(out.id, ([], False))
    return outs


def _job_out(job: Job, names: dict[str, str]) -> JobOut:
    settings = JobSettings.of(job.settings)
    return JobOut(
        id=job.id,
        name=job.name,
        company=names.get(job.company_id, ""),
        status=JobStatus(job.status),
        priority=job.priority,
        frames=job.frames,
        chunk_size=job.chunk_size,
        output_format=settings.output_format,
        output_pattern=settings.output_pattern,
        view_layers=list(settings.view_layers),
        camera=settings.camera,
        resolution=settings.resolution,
        samples=settings.samples,
        gpu=settings.gpu,
        frames_total=job.frames_total,
        frames_done=job.frames_done,
        tasks_total=job.tasks_total,
        tasks_done=job.tasks_completed,
        status_reason=job.status_reason,
        status_reason_code=job.status_reason_code,
        status_reason_params=job.status_reason_params,
        submitted_by=job.submitted_by,
        created_at=utc(job.created_at),
        started_at=utc(job.started_at) if job.started_at else None,
        finished_at=utc(job.finished_at) if job.finished_at else None,
        warning=job.warning,
        actions=[action.value for action in available(JobStatus(job.status))],
        order=settings.order,
    )


def tasks_out(session: Session, job: Job, only: str | None = None) -> list[TaskOut]:
    """Every chunk of the job with its attempts (``only``: just the chunk with that id)."""
    one = (Task.id == only) if only is not None else true()
    tasks = list(session.scalars(select(Task).where(Task.job_id == job.id, one).order_by(Task.index)))
    attempts: dict[str, list[TaskAttempt]] = {}
    for attempt in session.scalars(
        select(TaskAttempt)
        .join(Task, Task.id == TaskAttempt.task_id)
        .where(Task.job_id == job.id, one)
        .order_by(TaskAttempt.number)
    ):
        attempts.setdefault(attempt.task_id, []).append(attempt)
    done: dict[str, int] = {
        str(task_id): int(count)
        for task_id, count in session.execute(
            select(Frame.task_id, func.count())
            .where(Frame.job_id == job.id, (Frame.task_id == only) if only is not None else true())
            .group_by(Frame.task_id)
        )
    }
    job_status = JobStatus(job.status)
    return [
        TaskOut(
            id=task.id,
            index=task.index,
            frames=format_frames(task.frames),
            status=TaskStatus(task.status),
            frames_done=done.get(task.id, 0),
            actions=[a.value for a in chunk_available(job_status, TaskStatus(task.status))],  # issue 16
            attempts=[
                AttemptOut(
                    number=a.number,
                    node=a.node,
                    worker=a.worker,
                    status=a.status,
                    started_at=utc(a.started_at),
                    ended_at=utc(a.ended_at) if a.ended_at else None,
                    seconds=a.seconds,
                    blender_seconds=a.blender_seconds,
                    exit_code=a.exit_code,
                    reason=a.reason,
                    log_tail=a.log_tail,
                    fault=a.fault,
                    warning=a.warning,
                )
                for a in attempts.get(task.id, [])
            ],
        )
        for task in tasks
    ]


def frames_out(session: Session, job: Job) -> list[FrameOut]:
    """Stored frames of the job in frame order."""
    rows = session.scalars(select(Frame).where(Frame.job_id == job.id).order_by(Frame.frame))
    return [
        FrameOut(
            frame=f.frame,
            name=f.name,
            size=f.size,
            sha256=f.sha256,
            device=f.device,
            layers=[FrameLayerOut.model_validate(layer) for layer in f.layers or []],
        )
        for f in rows
    ]


def get_frame(session: Session, job: Job, frame: int) -> Frame:
    """One stored frame, or 404 saying which frames exist."""
    row = session.get(Frame, (job.id, frame))
    if row is None:
        raise NotFound(f"frame {frame} of job {job.id} is not rendered (yet)")
    return row


def frame_file(row: Frame, layer: str | None) -> tuple[str, str, int, str]:
    """(key, name, size, sha256) of the frame's file, or of one view layer's file; 404 naming the layers."""
    if layer is None:
        return row.key, row.name, row.size, row.sha256
    for item in row.layers or []:
        if item.get("layer") == layer:
            return str(item["key"]), str(item["name"]), int(str(item["size"])), str(item["sha256"])
    names = [str(item.get("layer")) for item in row.layers or []]
    raise NotFound(
        f"frame {row.frame} has no file of view layer {layer!r}"
        + (f"; its layers are {', '.join(names)}" if names else " (it is one file)")
    )


def job_log(session: Session, job: Job) -> str:
    """Every attempt's log tail in chunk order, with headers."""
    parts: list[str] = []
    for task in tasks_out(session, job):
        for attempt in task.attempts:
            parts.append(
                f"=== chunk {task.index} (frames {task.frames}) attempt {attempt.number} on {attempt.node or '?'}"
                f" [{attempt.status}] {attempt.reason}\n{attempt.log_tail}".rstrip()
            )
    return "\n".join(parts) + ("\n" if parts else "")


def in_flight_tasks(session: Session, job_id: str) -> list[Task]:
    """Tasks of the job that occupy a worker now."""
    return list(
        session.scalars(
            select(Task).where(Task.job_id == job_id, Task.status.in_([s.value for s in TASK_IN_FLIGHT]))
        )
    )
