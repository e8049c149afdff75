"""Usage reports from the append-only ledger: per company, per job, per resource; seconds, hours and cost.

Cost is resource-hours times the company's rate card price for that resource. Corrections in the ledger are
rows of their own (possibly negative seconds), so sums here already include them. Platform admins see every
company; company admins only their own; another company's name answers 404.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from farm.contract import UsageCompany, UsageReport, UsageRow
from farm.db.models import Company, Job, UsageEntry
from farm.metering import quota
from farm.metering.ledger import month_bounds
from farm.metering.money import DEFAULT_CURRENCY
from farm.services import companies
from farm.services.auth import USAGE_ROLE, Principal, require

CSV_COLUMNS = ["company", "job_id", "job_name", "resource", "seconds", "hours", "rate", "cost"]


def build(
    session: Session,
    who: Principal,
    month: str | None,
    company: str | None = None,
    per_job: bool = False,
    currency: str = DEFAULT_CURRENCY,
) -> UsageReport:
    """The report the caller may see; ``company`` narrows a platform admin's view to one company; costs are in
    ``currency`` (the rate cards', ``FARM_CURRENCY``)."""
    require(who, USAGE_ROLE, "reading usage")
    if company is not None:
        scope: list[Company] = [companies.get(session, who, company)]
    else:
        scope = companies.visible(session, who)
    by_id = {c.id: c for c in scope}
    filters: list[Any] = [UsageEntry.company_id.in_(list(by_id))]
    if month:
        start, end = month_bounds(month)
        filters += [UsageEntry.started_at >= start, UsageEntry.started_at < end]
    resource_seconds = func.sum(UsageEntry.seconds * UsageEntry.count)
    job_rows = session.execute(
        select(UsageEntry.company_id, UsageEntry.job_id, Job.name, UsageEntry.resource, resource_seconds)
        .outerjoin(Job, Job.id == UsageEntry.job_id)
        .where(*filters)
        .group_by(UsageEntry.company_id, UsageEntry.job_id, Job.name, UsageEntry.resource)
    ).all()

    def row(company_id: str, job_id: str | None, job_name: str | None, resource: str, seconds: float) -> UsageRow:
        owner = by_id[company_id]
        rate = float((owner.rates or {}).get(resource, 0.0))
        hours = seconds / 3600.0
        return UsageRow(
            company=owner.name,
            job_id=job_id,
            job_name=job_name,
            resource=resource,
            seconds=seconds,
            hours=hours,
            rate=rate,
            cost=round(hours * rate, 6),
        )

    per_job_rows = [row(str(c), j, n, str(r), float(s or 0.0)) for c, j, n, r, s in job_rows]
    per_job_rows.sort(key=lambda r: (r.company, r.job_id or "", r.resource))
    summed: dict[tuple[str, str], float] = {}
    for c, _j, _n, r, s in job_rows:
        summed[(str(c), str(r))] = summed.get((str(c), str(r)), 0.0) + float(s or 0.0)
    totals = sorted((row(c, None, None, r, s) for (c, r), s in summed.items()), key=lambda r: (r.company, r.resource))
    summary = []
    for owner in scope:
        mine = [t for t in totals if t.company == owner.name]
        summary.append(
            UsageCompany(
                company=owner.name,
                gpu_hours=sum(t.hours for t in mine if t.resource == "gpu"),
                cpu_hours=sum(t.hours for t in mine if t.resource == "cpu"),
                cost=round(sum(t.cost for t in mine), 6),
                gpu_hours_budget=quota.budget_hours(owner, "gpu"),
                cpu_hours_budget=quota.budget_hours(owner, "cpu"),
            )
        )
    return UsageReport(
        month=month,
        currency=currency,
        rows=per_job_rows if per_job else totals,
        totals=totals,
        companies=summary,
    )


def to_csv(report: UsageReport) -> str:
    """The report's rows as CSV with a header (one line per company, job and resource when per job)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in report.rows:
        writer.writerow(
            [
                r.company,
                r.job_id or "",
                r.job_name or "",
                r.resource,
                f"{r.seconds:.3f}",
                f"{r.hours:.6f}",
                f"{r.rate:g}",
                f"{r.cost:.6f}",
            ]
        )
    return buffer.getvalue()


def table_rows(report: UsageReport, per_job: bool) -> tuple[list[str], list[list[str]]]:
    """Columns and rows for a human table."""
    columns = ["company", *(["job", "name"] if per_job else []), "resource", "resource-seconds", "hours", "cost"]
    rows = [
        [
            r.company,
            *([r.job_id or "", r.job_name or ""] if per_job else []),
            r.resource,
            f"{r.seconds:.2f}",
            f"{r.hours:.4f}",
            f"{r.cost:.2f}",
        ]
        for r in report.rows
    ]
    return columns, rows
