"""`farm submit --after … [--frame-match]` on the session farm: the comp waits, visibly, then renders."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from farm.cli.main import app
from farm.client import FarmClient
from tests.pipeline.test_resubmit_farm import finished

pytestmark = [pytest.mark.ray, pytest.mark.blender]


def test_submit_after_and_its_mistakes(farm, sample_blend, monkeypatch):
    monkeypatch.setenv("FARM_URL", farm.url)
    monkeypatch.setenv("FARM_TOKEN", farm.admin_token)
    runner = CliRunner()
    lone = runner.invoke(app, ["submit", str(sample_blend), "--frames", "1", "--frame-match"])
    assert lone.exit_code == 2 and "frame_match needs" in lone.output
    unknown = runner.invoke(app, ["submit", str(sample_blend), "--frames", "1", "--after", "job-nope"])
    assert unknown.exit_code == 1 and "'job-nope' not found" in unknown.output

    base = ["submit", str(sample_blend), "--frames", "1-2", "--chunk", "1", "--no-preview", "--json"]
    render = json.loads(runner.invoke(app, [*base, "--name", "render"]).output)["job_id"]
    answer = runner.invoke(app, [*base, "--name", "comp", "--after", f"{render}, ", "--frame-match"])
    assert answer.exit_code == 0, answer.output
    comp = json.loads(answer.output)["job_id"]
    with FarmClient(farm.url, farm.admin_token) as client:
        shown = client.job(comp)
        assert (shown.after, shown.frame_match) == ([render], True)
        finished(client, render)
        done = finished(client, comp)
        assert done.frames_done == 2 and done.status_reason == ""
    status = runner.invoke(app, ["status", comp])
    assert status.exit_code == 0 and "completed" in status.output
