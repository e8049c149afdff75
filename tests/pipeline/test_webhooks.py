"""Webhooks: signed job events reach a receiver on 127.0.0.1, failures are retried with backoff, the delivery log
tells the company admin what happened, and a hanging receiver does not hold the dispatch loop."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import timedelta

from sqlalchemy import select

from farm.clock import SystemClock
from farm.contract import Role, WebhookCreate, WebhookEvent
from farm.db.models import WebhookDelivery
from farm.domain.states import JobStatus
from farm.lifecycle.transitions import set_job_status
from farm.services import webhooks
from farm.services.auth import Principal
from farm.services.webhooks import SenderConfig, WebhookSender
from tests import factories
from tests.pipeline.receiver import receiver
from tests.tenancy.conftest import Api


def admin_of(company_id: str, name: str) -> Principal:
    return Principal(token_id="t", company_id=company_id, company=name, role=Role.COMPANY_ADMIN)


def verify(secret: str, body: bytes, header: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


def test_events_are_signed_retried_with_backoff_and_logged(api: Api):
    clock = SystemClock()
    with receiver() as rx:
        rx.answers = {"/hook": [500, 503]}  # the first two tries fail
        with api.db.session() as s:
            job = factories.job(s, "hooked", frames="1-2", name="shot-010")
            who = admin_of(job.company_id, "hooked")
            hook = webhooks.add(s, who, WebhookCreate(url=rx.url), clock.now(), None)
            only_done = webhooks.add(
                s, who, WebhookCreate(url=rx.url + "/done", events=[WebhookEvent.COMPLETED]), clock.now(), None
            )
            set_job_status(job, JobStatus.ACTIVE, clock.now())
            set_job_status(job, JobStatus.COMPLETED, clock.now())
            job_id = job.id
        sender = WebhookSender(api.db, clock, SenderConfig(backoff_s=0.2, interval_s=0.05, max_attempts=5))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            sender.step()
            with api.db.session() as s:
                if all(d.status == "delivered" for d in s.scalars(select(WebhookDelivery))):
                    break
            time.sleep(0.05)
    got = [(r.path, json.loads(r.body)["event"]) for r in rx.received]
    # started's first two tries failed (500, 503): it arrives third; nothing is lost or reordered within a hook.
    assert [e for p, e in got if p == "/hook"] == ["started", "started", "started", "completed"]  # in order
    assert [e for p, e in got if p == "/hook/done"] == ["completed"]
    for r in rx.received:
        secret = hook.secret if r.path == "/hook" else only_done.secret
        assert verify(secret, r.body, r.headers["x-farm-signature"])
        assert not verify(secret, r.body + b" ", r.headers["x-farm-signature"])
        body = json.loads(r.body)
        assert r.headers["x-farm-event"] == body["event"] and body["job"]["id"] == job_id
    retried = [r.headers["x-farm-delivery"] for r in rx.received if json.loads(r.body)["event"] == "started"]
    assert len(set(retried)) == 1  # the same delivery id on every retry: receivers can drop duplicates
    with api.db.session() as s:
        log = webhooks.log_of(s, who, None, hook.id, 10)
    started = next(d for d in log if d.event == "started")
    assert (started.status, started.attempts, started.last_code, started.last_error) == ("delivered", 3, 204, "")
    assert started.delivered_at is not None
    # The backoff doubled: 0.2 s after the first failure, 0.4 s after the second.
    times = [r.at for r in rx.received if json.loads(r.body)["event"] == "started"]
    assert times[1] - times[0] >= 0.2 and times[2] - times[1] >= 0.4, times


def test_a_receiver_that_never_answers_2xx_ends_failed_with_the_reason(api: Api):
    clock = SystemClock()
    with receiver() as rx:
        rx.answers = {"/hook": [410] * 10}
        with api.db.session() as s:
            job = factories.job(s, "gone", frames="1")
            who = admin_of(job.company_id, "gone")
            hook = webhooks.add(s, who, WebhookCreate(url=rx.url), clock.now(), None)
            webhooks.test(s, who, hook.id, None, clock.now())
        sender = WebhookSender(api.db, clock, SenderConfig(backoff_s=0.01, max_attempts=3))
        for _ in range(50):
            sender.step()
            time.sleep(0.02)
    with api.db.session() as s:
        (delivery,) = webhooks.log_of(s, who, None, None, 10)
    assert (delivery.status, delivery.attempts, delivery.last_code) == ("failed", 3, 410)
    assert delivery.last_error.startswith("HTTP 410")
    assert len(rx.received) == 3


def test_unreachable_and_slow_receivers_are_errors_not_hangs(api: Api):
    clock = SystemClock()
    with receiver() as rx:
        rx.hang_s = 2.0
        with api.db.session() as s:
            job = factories.job(s, "slow", frames="1")
            who = admin_of(job.company_id, "slow")
            slow = webhooks.add(s, who, WebhookCreate(url=rx.url), clock.now(), None)
            dead = webhooks.add(s, who, WebhookCreate(url="http://127.0.0.1:9/none"), clock.now(), None)
            for hook in (slow, dead):
                webhooks.test(s, who, hook.id, None, clock.now())
        sender = WebhookSender(api.db, clock, SenderConfig(timeout_s=0.3, backoff_s=60))
        started = time.monotonic()
        assert sender.step() == 2
        assert time.monotonic() - started < 1.5
    with api.db.session() as s:
        log = {d.webhook_id: d for d in webhooks.log_of(s, who, None, None, 10)}
    assert log[slow.id].status == "pending" and "Timeout" in log[slow.id].last_error
    assert log[dead.id].status == "pending" and "Connect" in log[dead.id].last_error
    assert log[dead.id].next_at is not None and log[dead.id].next_at > clock.now() + timedelta(seconds=50)


def test_webhook_routes_are_scoped_and_checked(api: Api):
    admin = api.as_(api.mint("web-a", Role.COMPANY_ADMIN))
    artist = api.as_(api.mint("web-a", Role.ARTIST))
    other = api.as_(api.mint("web-b", Role.COMPANY_ADMIN))
    made = api.post("/api/v1/admin/webhooks", json={"url": "http://127.0.0.1:9/x"}, headers=admin)
    assert made.status_code == 201, made.text
    hook = made.json()
    assert len(hook["secret"]) == 64 and "test" not in hook["events"]
    listed = api.get("/api/v1/admin/webhooks", headers=admin).json()["webhooks"]
    assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]
    assert api.get("/api/v1/admin/webhooks", headers=artist).status_code == 403
    assert api.get("/api/v1/admin/webhooks", headers=other).json()["webhooks"] == []
    for method, path in (
        ("DELETE", f"/api/v1/admin/webhooks/{hook['id']}"),
        ("POST", f"/api/v1/admin/webhooks/{hook['id']}/test"),
    ):
        assert api.request(method, path, headers=other).status_code == 404
    assert api.get("/api/v1/admin/webhooks?company=web-a", headers=other).status_code == 404
    for bad in ({"url": "ftp://x/y"}, {"url": "http://user@host/"}, {"url": "http://h/", "events": ["nope"]}):
        answer = api.post("/api/v1/admin/webhooks", json=bad, headers=admin)
        assert answer.status_code == 422, (bad, answer.text)
    tested = api.post(f"/api/v1/admin/webhooks/{hook['id']}/test", headers=admin)
    assert tested.status_code == 202 and tested.json()["event"] == "test"
    log = api.get("/api/v1/admin/webhooks/deliveries", headers=admin).json()["deliveries"]
    assert [(d["event"], d["status"]) for d in log] == [("test", "pending")]
    assert api.get("/api/v1/admin/webhooks/deliveries", headers=other).json()["deliveries"] == []
    assert api.delete(f"/api/v1/admin/webhooks/{hook['id']}", headers=admin).status_code == 204
    log = api.get("/api/v1/admin/webhooks/deliveries", headers=admin).json()["deliveries"]
    assert [(d["status"], d["last_error"]) for d in log] == [("failed", "webhook removed")]
    assert api.get("/api/v1/admin/webhooks", headers=admin).json()["webhooks"] == []
