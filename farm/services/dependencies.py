"""Job dependencies at submit (``after``, ``frame_match``): checked, written, and shown; scoped per company.

An unknown job or another company's answers 404 (as everywhere); a cycle answers 422. A new job cannot close a
cycle by itself (nobody depends on it yet), but ``link`` checks the graph anyway so any later way of adding edges
(and a job naming itself) is refused the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from farm.db.models import Job, JobDependency
from farm.errors import NotFound, ValidationFailed
from farm.lifecycle import dependencies
from farm.services.auth import Principal


def _upstream_closure(session: Session, start: Sequence[str]) -> set[str]:
    """Every job reachable from ``start`` by following 'runs after' edges (breadth first, one query per level)."""
    seen: set[str] = set()
    frontier = set(start)
    while frontier:
        seen |= frontier
        rows = session.scalars(select(JobDependency.depends_on).where(JobDependency.job_id.in_(list(frontier))))
        frontier = {str(r) for r in rows} - seen
    return seen


def link(session: Session, who: Principal, job: Job, after: Sequence[str], frame_match: bool) -> None:
    """Make ``job`` run after the jobs ``after`` (same company, 404 otherwise; no cycle, 422), and decide what it
    waits for now. The caller's transaction holds both the job and its edges."""
    if not after:
        return
    if job.id in after:
        raise ValidationFailed(f"after: job {job.id} cannot run after itself")
    found = {
        up.id: up
        for up in session.scalars(select(Job).where(Job.id.in_(list(after)), Job.company_id == job.company_id))
    }
    unknown = [ident for ident in after if ident not in found]
    if unknown:
        raise NotFound(f"after: job(s) {', '.join(repr(u) for u in unknown)} not found")
    if job.id in _upstream_closure(session, list(after)):
        raise ValidationFailed(f"after: job {job.id} would wait for itself through {', '.join(after)} (a cycle)")
    for ident in after:
        session.add(JobDependency(job_id=job.id, depends_on=ident, frame_match=frame_match))
    wait, reason = dependencies.decide([(found[ident], frame_match) for ident in after])
    dependencies.apply(job, wait, reason)


def upstream_of(session: Session, job_ids: Sequence[str]) -> dict[str, tuple[list[str], bool]]:
    """For each job id: (the jobs it runs after, whether frames are matched)."""
    out: dict[str, tuple[list[str], bool]] = {}
    if not job_ids:
        return out
    for dep in session.scalars(
        select(JobDependency).where(JobDependency.job_id.in_(list(job_ids))).order_by(JobDependency.depends_on)
    ):
        ups, match = out.get(dep.job_id, ([], False))
        ups.append(dep.depends_on)
        out[dep.job_id] = (ups, match or dep.frame_match)
    return out
