"""Job events for the companies' webhooks, written to the outbox (``webhook_deliveries``) in the same transaction
as the change they tell of: an event is sent if and only if its change was committed, and nothing here waits on
the network (``farm.services.webhooks.WebhookSender`` sends the rows).

Events: ``queued`` (submitted, or requeued by a retry), ``started`` (first chunk dispatched), ``first_frame``,
``completed``, ``failed``, ``canceled``; ``test`` from ``farm admin webhook test``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from farm.clock import utc
from farm.db.models import Job, Webhook, WebhookDelivery

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


def payload(event: str, company_id: str, now: datetime, job: Job | None, **extra: Any) -> str:
    """The JSON body, serialised once: the signature covers exactly these bytes."""
    body: dict[str, Any] = {"event": event, "at": utc(now).isoformat(), **extra}
    if job is not None:
        body["job"] = {
            "id": job.id,
            "name": job.name,
            "status": str(job.status.value if hasattr(job.status, "value") else job.status),
            "status_reason": job.status_reason,
            "frames_total": job.frames_total,
            "frames_done": job.frames_done,
        }
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def queue(session: Session, hook: Webhook, event: str, body: str, job_id: str | None, now: datetime) -> None:
    """One outbox row for one webhook."""
    session.add(
        WebhookDelivery(
            webhook_id=hook.id,
            company_id=hook.company_id,
            event=event,
            job_id=job_id,
            payload=body,
            status=PENDING,
            attempts=0,
            next_at=now,
            last_code=None,
            last_error="",
            created_at=now,
        )
    )


#: ``Session.info`` key: each company's webhooks, read once per transaction (a pass may emit many events).
_HOOKS = "farm.notify.hooks"


def _hooks(session: Session, company_id: str) -> list[Webhook]:
    known: dict[str, list[Webhook]] = session.info.setdefault(_HOOKS, {})
    if company_id not in known:
        with session.no_autoflush:  # reading the hooks needs none of the pass's pending writes
            known[company_id] = list(session.scalars(select(Webhook).where(Webhook.company_id == company_id)))
    return known[company_id]


def emit(session: Session, job: Job, event: str, now: datetime, **extra: Any) -> int:
    """Queue ``event`` of ``job`` for each of its company's webhooks that wants it; returns how many."""
    hooks = [h for h in _hooks(session, job.company_id) if event in h.events]
    if not hooks:
        return 0
    body = payload(event, job.company_id, now, job, **extra)
    for hook in hooks:
        queue(session, hook, event, body, job.id, now)
    return len(hooks)
