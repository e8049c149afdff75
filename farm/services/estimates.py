"""Cost estimates before submit (``farm estimate``): a few sample frames rendered as an ordinary job (metered like any
render), extrapolated to the whole frame range with the company's rate card.

The estimate is the metered slot-seconds per sampled frame (each sample is its own chunk, so the scene load is in
it: an estimate errs high for long chunks) times the frames, in resource-hours of the resource the samples ran
on. The band is honest about what a few frames cannot know: at least ±25 %, widened to twice the samples'
relative spread (frames of one shot differ), and ±50 % with a single sample.
"""

from __future__ import annotations

import math
import statistics

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from farm.contract import EstimateOut, JobSettings
from farm.db.models import Company, Frame, Job, UsageEntry
from farm.domain.frames import parse_frames
from farm.domain.states import JobStatus
from farm.errors import Conflict
from farm.metering.money import DEFAULT_CURRENCY


def band(values: list[float]) -> float:
    """The relative half-width of the estimate's band from the per-frame seconds."""
    if len(values) < 2:
        return 0.5
    mean = statistics.fmean(values)
    spread = statistics.pstdev(values) / mean if mean > 0 else 1.0
    return max(0.25, 2 * spread)


def estimate(session: Session, job: Job, currency: str = DEFAULT_CURRENCY) -> EstimateOut:
    """The estimate a sample job gives, its rate and costs in ``currency`` (the farm's ``FARM_CURRENCY``); 409 if
    the job is not an estimate's."""
    settings = JobSettings.of(job.settings)
    if settings.estimate_for is None:
        raise Conflict(f"job {job.id} is not an estimate (submit one with farm estimate)")
    frames = parse_frames(settings.estimate_for)
    rows = session.execute(
        select(UsageEntry.resource, func.sum(UsageEntry.seconds * UsageEntry.count))
        .where(UsageEntry.job_id == job.id, UsageEntry.resource.in_(("cpu", "gpu")))
        .group_by(UsageEntry.resource)
    ).all()
    used = {str(r): float(s or 0.0) for r, s in rows}
    resource = max(used, key=lambda r: used[r]) if used else ("gpu" if settings.gpu else "cpu")
    stored = list(session.execute(select(Frame.frame, Frame.render_seconds).where(Frame.job_id == job.id)).all())
    done = len(stored)
    per_frame = used.get(resource, 0.0) / done if done else 0.0
    hours = per_frame * len(frames) / 3600.0
    width = band([float(s or 0.0) for _, s in stored])
    company = session.get(Company, job.company_id)
    rate = float(((company.rates if company else None) or {}).get(resource, 0.0))

    def r(x: float) -> float:
        return math.floor(x * 10000 + 0.5) / 10000

    return EstimateOut(
        job_id=job.id,
        currency=currency,
        status=JobStatus(job.status),
        frames=settings.estimate_for,
        frames_total=len(frames),
        sampled_frames=sorted(int(f) for f, _ in stored),
        seconds_per_frame=r(per_frame),
        resource=resource,
        resource_hours=r(hours),
        resource_hours_low=r(hours * (1 - width)),
        resource_hours_high=r(hours * (1 + width)),
        rate=rate,
        cost=r(hours * rate),
        cost_low=r(hours * (1 - width) * rate),
        cost_high=r(hours * (1 + width) * rate),
        ready=JobStatus(job.status) is JobStatus.COMPLETED and done > 0,
    )
