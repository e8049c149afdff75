"""The embedded farm sends its webhooks by itself: a real Blender job's events reach a receiver on 127.0.0.1, in
order, signed, and the CLI's `farm admin webhook` commands manage and read them."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
from typer.testing import CliRunner

from farm.cli.main import app
from farm.client.pipeline import PipelineClient
from farm.contract import WebhookCreate
from tests.pipeline.receiver import receiver

pytestmark = [pytest.mark.ray, pytest.mark.blender]


def test_real_job_events_reach_the_receiver(farm, sample_blend, monkeypatch):
    monkeypatch.setenv("FARM_URL", farm.url)
    monkeypatch.setenv("FARM_TOKEN", farm.admin_token)
    with receiver() as rx, PipelineClient(farm.url, farm.admin_token) as client:
        hook = client.add_webhook(WebhookCreate(url=rx.url))
        try:
            job = client.submit(sample_blend, "1-2", name="hooked", chunk_size=1, preview=False).job
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                events = [json.loads(r.body)["event"] for r in rx.received if json.loads(r.body)["job"]["id"] == job.id]
                if "completed" in events:
                    break
                time.sleep(0.1)
            assert events == ["queued", "started", "first_frame", "completed"], events
            for r in rx.received:
                mac = hmac.new(hook.secret.encode(), r.body, hashlib.sha256).hexdigest()
                assert r.headers["x-farm-signature"] == f"sha256={mac}"
            done = json.loads(rx.received[-1].body)["job"]
            assert (done["status"], done["frames_done"], done["frames_total"]) == ("completed", 2, 2)

            runner = CliRunner()
            listed = runner.invoke(app, ["admin", "webhook", "list", "--json"])
            assert listed.exit_code == 0, listed.output
            assert hook.id in [h["id"] for h in json.loads(listed.output)["webhooks"]]
            tested = runner.invoke(app, ["admin", "webhook", "test", hook.id])
            assert tested.exit_code == 0 and "queued as delivery" in tested.output
            deadline = time.monotonic() + 10
            while not any(json.loads(r.body)["event"] == "test" for r in rx.received) and time.monotonic() < deadline:
                time.sleep(0.1)
            log = runner.invoke(app, ["admin", "webhook", "log", "--webhook", hook.id, "--json"])
            rows = json.loads(log.output)["deliveries"]
            assert [d["event"] for d in rows][:1] == ["test"] and all(d["status"] == "delivered" for d in rows)
            bad = runner.invoke(app, ["admin", "webhook", "add", "ftp://nope"])
            assert bad.exit_code == 2 and "url" in bad.output.lower()
            bad_event = runner.invoke(app, ["admin", "webhook", "add", rx.url, "--event", "exploded"])
            assert bad_event.exit_code == 2 and "--event" in bad_event.output
        finally:
            client.remove_webhook(hook.id)
