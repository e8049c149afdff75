"""Monthly budgets and the visible reason a job waits for: ``quota exceeded: …``.

Budgets are GPU-hours and CPU-hours (resource-hours, from the append-only ledger) per calendar month (UTC).
A job whose company spent its budget for the resource the job needs is held by the scheduler: it stays queued
(or active), never fails for this, shows the reason, and runs again as soon as the budget is raised.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from farm.db.models import Company, Job, UsageEntry
from farm.domain import reasons
from farm.metering.ledger import month_bounds

QUOTA_PREFIX = "quota exceeded: "


def month_of(now: datetime) -> str:
    """``2026-11`` for any instant of November 2026 (UTC)."""
    return f"{now.year:04d}-{now.month:02d}"


def budget_hours(company: Company, resource: str) -> float | None:
    """The company's monthly budget for ``resource`` in hours; None = unlimited."""
    if resource == "gpu":
        return company.gpu_hours_budget
    if resource == "cpu":
        return company.cpu_hours_budget
    return None


def month_hours(session: Session, company_ids: Iterable[str], month: str) -> dict[tuple[str, str], float]:
    """Resource-hours per (company id, resource) spent in ``month`` according to the ledger."""
    ids = list(company_ids)
    if not ids:
        return {}
    start, end = month_bounds(month)
    rows = session.execute(
        select(UsageEntry.company_id, UsageEntry.resource, func.sum(UsageEntry.seconds * UsageEntry.count))
        .where(UsageEntry.company_id.in_(ids), UsageEntry.started_at >= start, UsageEntry.started_at < end)
        .group_by(UsageEntry.company_id, UsageEntry.resource)
    ).all()
    return {(str(c), str(r)): float(s or 0.0) / 3600.0 for c, r, s in rows}


def over_budget(company: Company, resource: str, used_hours: float, month: str) -> str | None:
    """The reason a job of ``company`` needing ``resource`` must wait, or None when the budget allows it."""
    budget = budget_hours(company, resource)
    if budget is None or used_hours < budget:
        return None
    return reasons.make(  # the text starts with QUOTA_PREFIX
        "quota",
        company=company.name,
        used=f"{used_hours:.2f}",
        budget=f"{budget:g}",
        resource=resource.upper(),
        month=month,
        flag=resource,
    )


def hold(job: Job, reason: str) -> None:
    """Show why the job waits; its status does not change (waiting for budget is not a state)."""
    if job.status_reason != reason:
        job.status_reason = reason


def release(job: Job) -> None:
    """Clear a quota reason once the job gets a slot again."""
    if job.status_reason.startswith(QUOTA_PREFIX):
        job.status_reason = ""
