"""Company webhooks: managed by company admins, sent from the outbox by a thread of the scheduler process.

Each delivery is an HTTP POST of the event's JSON (``farm.lifecycle.notify``) with headers:

* ``X-Farm-Event``: the event; ``X-Farm-Delivery``: the delivery's number (the same on every retry: receivers
  can drop duplicates by it);
* ``X-Farm-Signature``: ``sha256=`` and the hex HMAC-SHA256 of the body with the webhook's secret.

A 2xx answer delivers it. Anything else (another status, a refused connection, no answer within
``timeout_s``) is retried after ``backoff_s * 2**(attempts - 1)`` seconds (capped at ``max_backoff_s``); after
``max_attempts`` tries the delivery is ``failed``. Each row is the delivery log a company admin reads.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from farm.clock import Clock, new_id, utc
from farm.contract import (
    Role,
    WebhookCreate,
    WebhookCreated,
    WebhookDeliveryOut,
    WebhookEvent,
    WebhookOut,
)
from farm.db.engine import Database
from farm.db.models import Company, Webhook, WebhookDelivery
from farm.errors import NotFound, ValidationFailed
from farm.lifecycle import notify
from farm.services.auth import Principal, require

log = logging.getLogger(__name__)

#: Webhooks one company may hold.
MAX_WEBHOOKS = 20


def sign(secret: str, body: bytes) -> str:
    """The ``X-Farm-Signature`` value of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _company(session: Session, who: Principal, company: str | None) -> Company:
    """The caller's company, or (platform admin) the one named; another company's name answers 404."""
    require(who, Role.COMPANY_ADMIN, "managing webhooks")
    if company is None or company == who.company:
        row = session.get(Company, who.company_id)
    elif who.is_platform_admin:
        row = session.scalar(select(Company).where(Company.name == company))
    else:
        row = None
    if row is None:
        raise NotFound(f"company {company or who.company!r} not found")
    return row


def _out(hook: Webhook, company: str) -> WebhookOut:
    return WebhookOut(
        id=hook.id,
        company=company,
        url=hook.url,
        events=[WebhookEvent(e) for e in hook.events],
        created_at=utc(hook.created_at),
    )


def add(session: Session, who: Principal, spec: WebhookCreate, now: datetime, company: str | None) -> WebhookCreated:
    """A new webhook with a fresh secret (shown once)."""
    row = _company(session, who, company)
    held = len(list(session.scalars(select(Webhook.id).where(Webhook.company_id == row.id))))
    if held >= MAX_WEBHOOKS:
        raise ValidationFailed(f"company {row.name} has {held} webhooks already (at most {MAX_WEBHOOKS})")
    hook = Webhook(
        id=new_id("hook"),
        company_id=row.id,
        url=spec.url,
        secret=secrets.token_hex(32),
        events=[e.value for e in spec.events],
        created_at=now,
    )
    session.add(hook)
    session.flush()
    return WebhookCreated(**_out(hook, row.name).model_dump(), secret=hook.secret)


def listed(session: Session, who: Principal, company: str | None) -> list[WebhookOut]:
    row = _company(session, who, company)
    hooks = session.scalars(select(Webhook).where(Webhook.company_id == row.id).order_by(Webhook.created_at))
    return [_out(h, row.name) for h in hooks]


def _hook(session: Session, who: Principal, hook_id: str, company: str | None) -> tuple[Webhook, Company]:
    row = _company(session, who, company)
    hook = session.get(Webhook, hook_id)
    if hook is None or hook.company_id != row.id:
        raise NotFound(f"webhook {hook_id!r} not found")
    return hook, row


def remove(session: Session, who: Principal, hook_id: str, company: str | None, now: datetime) -> None:
    """Delete the webhook; its pending deliveries fail (the log keeps them)."""
    hook, _ = _hook(session, who, hook_id, company)
    for delivery in session.scalars(
        select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id, WebhookDelivery.status == notify.PENDING)
    ):
        delivery.status, delivery.last_error = notify.FAILED, "webhook removed"
    session.delete(hook)


def test(session: Session, who: Principal, hook_id: str, company: str | None, now: datetime) -> WebhookDeliveryOut:
    """Queue a ``test`` event for the webhook (sent like any other)."""
    hook, row = _hook(session, who, hook_id, company)
    body = notify.payload(WebhookEvent.TEST.value, row.id, now, None, company=row.name, webhook=hook.id)
    notify.queue(session, hook, WebhookEvent.TEST.value, body, None, now)
    session.flush()
    delivery = session.scalars(
        select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id).order_by(WebhookDelivery.id.desc())
    ).first()
    assert delivery is not None
    return delivery_out(delivery)


def delivery_out(d: WebhookDelivery) -> WebhookDeliveryOut:
    return WebhookDeliveryOut(
        id=d.id,
        webhook_id=d.webhook_id,
        event=d.event,
        job_id=d.job_id,
        status=d.status,
        attempts=d.attempts,
        last_code=d.last_code,
        last_error=d.last_error,
        created_at=utc(d.created_at),
        next_at=utc(d.next_at) if d.status == notify.PENDING else None,
        delivered_at=utc(d.delivered_at) if d.delivered_at else None,
    )


def log_of(
    session: Session, who: Principal, company: str | None, hook_id: str | None, limit: int
) -> list[WebhookDeliveryOut]:
    """The company's deliveries, newest first (only one webhook's with ``hook_id``)."""
    row = _company(session, who, company)
    query = select(WebhookDelivery).where(WebhookDelivery.company_id == row.id)
    if hook_id is not None:
        query = query.where(WebhookDelivery.webhook_id == hook_id)
    rows = session.scalars(query.order_by(WebhookDelivery.id.desc()).limit(limit))
    return [delivery_out(d) for d in rows]


@dataclass(frozen=True)
class SenderConfig:
    interval_s: float = 1.0
    timeout_s: float = 5.0
    backoff_s: float = 5.0
    max_backoff_s: float = 600.0
    max_attempts: int = 8
    batch: int = 50


@dataclass(frozen=True)
class _Due:
    id: int
    url: str
    secret: str
    event: str
    body: str


class WebhookSender:
    """Sends due outbox rows; runs in its own thread so a slow receiver never holds the dispatch loop."""

    def __init__(
        self, db: Database, clock: Clock, config: SenderConfig | None = None, stop: threading.Event | None = None
    ) -> None:
        self.db = db
        self.clock = clock
        self.config = config or SenderConfig()
        self.wake = threading.Event()
        self.stop = stop or threading.Event()
        self._thread: threading.Thread | None = None
        self._http = httpx.Client(timeout=self.config.timeout_s, follow_redirects=False, trust_env=False)

    def _due(self) -> list[_Due]:
        """The oldest pending delivery of each webhook, if its time has come: a webhook gets its events in order,
        so one that is being retried holds back the later ones of the same webhook (not the others')."""
        now = self.clock.now()
        with self.db.session() as s:
            heads = (
                select(func.min(WebhookDelivery.id))
                .where(WebhookDelivery.status == notify.PENDING)
                .group_by(WebhookDelivery.webhook_id)
            )
            rows = s.execute(
                select(WebhookDelivery, Webhook)
                .join(Webhook, Webhook.id == WebhookDelivery.webhook_id, isouter=True)
                .where(WebhookDelivery.id.in_(heads), WebhookDelivery.next_at <= now)
                .order_by(WebhookDelivery.next_at, WebhookDelivery.id)
                .limit(self.config.batch)
            ).all()
            due = []
            for delivery, hook in rows:
                if hook is None:
                    delivery.status, delivery.last_error = notify.FAILED, "webhook removed"
                    continue
                due.append(_Due(delivery.id, hook.url, hook.secret, delivery.event, delivery.payload))
            return due

    def _send(self, due: _Due) -> tuple[int | None, str]:
        body = due.body.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "render-farm-webhooks",
            "X-Farm-Event": due.event,
            "X-Farm-Delivery": str(due.id),
            "X-Farm-Signature": sign(due.secret, body),
        }
        try:
            answer = self._http.post(due.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]
        if 200 <= answer.status_code < 300:
            return answer.status_code, ""
        return answer.status_code, f"HTTP {answer.status_code}: {answer.text[:200]}"

    def _record(self, due: _Due, code: int | None, error: str) -> bool:
        now = self.clock.now()
        cfg = self.config
        with self.db.session() as s:
            row = s.get(WebhookDelivery, due.id)
            if row is None or row.status != notify.PENDING:
                return False
            row.attempts += 1
            row.last_code, row.last_error = code, error
            if not error:
                row.status, row.delivered_at = notify.DELIVERED, now
            elif row.attempts >= cfg.max_attempts:
                row.status = notify.FAILED
                log.warning("webhook delivery %d failed after %d attempts: %s", row.id, row.attempts, error)
            else:
                delay = min(cfg.max_backoff_s, cfg.backoff_s * 2 ** (row.attempts - 1))
                row.next_at = now + timedelta(seconds=delay)
            return row.status != notify.PENDING

    def step(self) -> int:
        """Send what is due, each webhook's deliveries in order, up to ``batch``; returns how many were tried."""
        tried = 0
        while tried < self.config.batch:
            due = self._due()
            finished = 0
            for item in due:
                code, error = self._send(item)
                finished += self._record(item, code, error)
            tried += len(due)
            if not finished:
                break  # nothing moved on: what is left waits for its backoff
        return tried

    def run(self, stop: threading.Event) -> None:
        """Until ``stop``: send, then sleep ``interval_s`` (or until woken)."""
        while not stop.is_set():
            try:
                busy = self.step() >= self.config.batch
            except Exception:  # a database hiccup must not end the thread; the rows stay pending
                log.exception("webhook sender step failed")
                busy = False
            if not busy:
                self.wake.wait(self.config.interval_s)
                self.wake.clear()
        self._http.close()

    def __call__(self) -> None:
        """A dispatcher ``periodic`` hook: the sender thread runs while the process schedules (started once)."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self.run, args=(self.stop,), name="webhook-sender", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the thread (within one interval) and wait for it."""
        self.stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.config.timeout_s + self.config.interval_s + 1)
