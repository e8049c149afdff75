"""Presets and resubmit with real Blender on the session farm, through the `farm` CLI; results checked by bytes."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from farm.cli.main import app
from farm.client import FarmClient
from farm.contract import JobOut
from farm.db.models import Blob
from farm.domain.states import JOB_TERMINAL
from tests.reliability.pixels import pixel_digest

pytestmark = [pytest.mark.ray, pytest.mark.blender]


def run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def finished(client: FarmClient, job_id: str) -> JobOut:
    deadline = time.monotonic() + 120
    job = client.job(job_id)
    while job.status not in JOB_TERMINAL and time.monotonic() < deadline:
        time.sleep(0.1)
        job = client.job(job_id)
    assert job.status.value == "completed", job.status_reason
    return job


def hashes(client: FarmClient, job_id: str) -> dict[int, str]:
    """Each stored frame's pixel digest (Blender writes render times into the files, so file bytes differ)."""
    out = {}
    for frame in client.frames(job_id).frames:
        answer = client._request("GET", f"/api/v1/jobs/{job_id}/frames/{frame.frame}")
        assert hashlib.sha256(answer.content).hexdigest() == frame.sha256
        out[frame.frame] = pixel_digest(answer.content)
    return out


def test_preset_submit_then_resubmit_same_and_changed(farm, sample_blend, monkeypatch):
    monkeypatch.setenv("FARM_URL", farm.url)
    monkeypatch.setenv("FARM_TOKEN", farm.admin_token)
    run("preset", "save", "tiny", "--samples", "1", "--chunk", "1", "--priority", "70")
    shown = json.loads(run("preset", "show", "tiny", "--json"))
    assert shown["settings"] == {"samples": 1, "chunk_size": 1, "priority": 70}
    submitted = json.loads(
        run(
            "submit", str(sample_blend), "--preset", "tiny", "--frames", "1-2", "--chunk", "2", "--no-preview", "--json"
        )
    )
    with FarmClient(farm.url, farm.admin_token) as client:
        first = finished(client, submitted["job_id"])
        assert (first.samples, first.chunk_size, first.priority) == (1, 2, 70)  # --chunk beat the preset's
        with farm.db.session() as s:
            blobs_before = s.scalar(select(func.count()).select_from(Blob))

        same = json.loads(run("resubmit", first.id, "--json"))
        again = finished(client, same["job_id"])
        assert (again.frames, again.samples, again.chunk_size) == ("1-2", 1, 2)
        assert hashes(client, again.id) == hashes(client, first.id)  # the same inputs: the same pixels

        changed = json.loads(run("resubmit", first.id, "--frames", "2", "--samples", "8", "--json"))
        more = finished(client, changed["job_id"])
        assert (more.frames, more.samples) == ("2", 8)
        assert set(hashes(client, more.id)) == {2}
        assert hashes(client, more.id)[2] != hashes(client, first.id)[2]  # 8 samples render other pixels
        with farm.db.session() as s:
            assert s.scalar(select(func.count()).select_from(Blob)) == blobs_before  # nothing uploaded again

    run("preset", "save", "like-first", "--from", first.id)
    copied = json.loads(run("preset", "show", "like-first", "--json"))["settings"]
    assert (copied["samples"], copied["chunk_size"], copied["priority"]) == (1, 2, 70)
    assert "like-first" in run("preset", "list")
    run("preset", "delete", "like-first")
    run("preset", "delete", "tiny")
    missing = CliRunner().invoke(app, ["submit", str(sample_blend), "--preset", "tiny", "--frames", "1"])
    assert missing.exit_code != 0 and "preset 'tiny' not found" in missing.output
    bad = CliRunner().invoke(app, ["resubmit", first.id, "--samples", "0"])
    assert bad.exit_code == 2 and "--samples" in bad.output
