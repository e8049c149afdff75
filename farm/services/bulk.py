"""One action on many jobs (issue 16): ``POST /api/v1/jobs/bulk``, ``farm cancel J1 J2 …`` and the monitor's bulk
form all come here.

Each job goes through the door its own action has: the caller's company (another company's job is *not found*,
never told apart from an absent one), the job's row lock, and the lifecycle's actions table (a refusal says why). Each
job has a transaction of its own, so one refusal undoes nothing else; the answer says, job by job, what happened.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from farm.clock import Clock
from farm.contract import BulkAction, BulkJobResult, BulkOutcome, BulkRequest, BulkResult
from farm.db.engine import Database
from farm.db.models import Job
from farm.domain.states import JobStatus
from farm.errors import FarmError, NotFound
from farm.lifecycle import control
from farm.services import jobs
from farm.services.auth import Principal

log = logging.getLogger(__name__)

#: How each bulk action is carried out on one locked job: the lifecycle's own function, as its single-job route.
CARRY_OUT: dict[BulkAction, Callable[[Session, Job, datetime, BulkRequest], object]] = {
    BulkAction.CANCEL: lambda s, job, now, req: control.request_cancel(s, job, now),
    BulkAction.PAUSE: lambda s, job, now, req: control.request_pause(s, job, now, stop_running=req.now),
    BulkAction.RESUME: lambda s, job, now, req: control.resume(s, job, now),
    BulkAction.RETRY: lambda s, job, now, req: control.retry(s, job, now),
    BulkAction.PRIORITY: lambda s, job, now, req: control.set_priority(s, job, int(req.priority or 0), now),
}


def apply(db: Database, clock: Clock, who: Principal, request: BulkRequest) -> BulkResult:
    """Carry out ``request`` on each of its jobs as ``who``, one transaction per job. Refusals (4xx: not found,
    refused by the actions table, not allowed) are answers; a 5xx (database or store down) is raised."""
    carry_out = CARRY_OUT[request.action]
    results: list[BulkJobResult] = []
    for job_id in dict.fromkeys(request.job_ids):
        try:
            with db.session() as s:
                job = jobs.get_job(s, who, job_id, lock=True)
                carry_out(s, job, clock.now(), request)
                status = JobStatus(job.status)
        except NotFound as exc:
            results.append(BulkJobResult(job_id=job_id, outcome=BulkOutcome.NOT_FOUND, detail=exc.message))
        except FarmError as exc:
            if exc.status_code >= 500:
                raise
            results.append(BulkJobResult(job_id=job_id, outcome=BulkOutcome.REFUSED, detail=exc.message))
        else:
            results.append(BulkJobResult(job_id=job_id, outcome=BulkOutcome.DONE, status=status))
    count = {outcome: sum(r.outcome is outcome for r in results) for outcome in BulkOutcome}
    log.info(
        "bulk %s by token %s: %d done, %d refused, %d not found",
        request.action.value,
        who.token_id,
        count[BulkOutcome.DONE],
        count[BulkOutcome.REFUSED],
        count[BulkOutcome.NOT_FOUND],
    )
    return BulkResult(
        action=request.action,
        done=count[BulkOutcome.DONE],
        refused=count[BulkOutcome.REFUSED],
        not_found=count[BulkOutcome.NOT_FOUND],
        jobs=results,
    )
