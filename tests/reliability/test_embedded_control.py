"""Job control and GPU placement on the embedded farm (real Ray, real Blender, one CPU slot), through the CLI."""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

from farm.cli.main import app
from farm.domain.states import JOB_TERMINAL

pytestmark = [pytest.mark.ray, pytest.mark.blender]


def cli(farm, *args):
    return CliRunner().invoke(app, list(args), env={"FARM_URL": farm.url, "FARM_TOKEN": farm.admin_token})


def wait_for(check, timeout=120.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not true after {timeout}s")


def test_pause_resume_and_the_refusals_that_say_why(farm, client, sample_blend):
    job = client.submit(sample_blend, "1-6", name="p", chunk_size=1).job
    paused = cli(farm, "pause", job.id)
    assert paused.exit_code == 0, paused.output
    assert "pause" in paused.output or "completed" in paused.output
    try:
        status = wait_for(
            lambda: client.job(job.id).status.value in ("paused", "completed") and client.job(job.id).status
        )
    except AssertionError:
        tasks = [
            (t.index, t.status.value, [(a.status, a.reason) for a in t.attempts]) for t in client.tasks(job.id).tasks
        ]
        slots = [(slot.name, slot.task_id, slot.job_id) for slot in farm.pool.slots]
        raise AssertionError(f"job {client.job(job.id)!r}; tasks {tasks}; slots {slots}") from None
    if status.value == "paused":
        tasks = client.tasks(job.id).tasks
        assert {t.status.value for t in tasks} <= {"completed", "paused"}
        assert any(t.status.value == "paused" for t in tasks)
        resumed = cli(farm, "resume", job.id)
        assert resumed.exit_code == 0, resumed.output
    done = wait_for(lambda: client.job(job.id).status in JOB_TERMINAL and client.job(job.id))
    assert done.status.value == "completed" and done.frames_done == 6
    refused = cli(farm, "retry", job.id)
    assert refused.exit_code == 1 and "no failed or canceled chunks" in refused.output
    again = cli(farm, "pause", job.id)
    assert again.exit_code == 1 and "only queued or active jobs can be paused" in again.output
    listing = cli(farm, "blocklist", job.id)
    assert listing.exit_code == 0 and "no node has failed a chunk" in listing.output
    unknown = cli(farm, "unblock", job.id, "nowhere")
    assert unknown.exit_code == 1 and "has no failed chunks" in unknown.output


def test_gpu_job_without_fallback_waits_with_a_reason_on_a_cpu_only_farm(farm, client, sample_blend):
    job = client.submit(sample_blend, "1", name="g1", gpu=True, allow_cpu_fallback=False).job
    waiting = wait_for(lambda: "GPU" in client.job(job.id).status_reason and client.job(job.id), timeout=15)
    assert waiting.status.value == "queued"
    assert waiting.status_reason == "waiting: no GPU slot is up and this job does not allow CPU fallback"
    started = time.monotonic()
    client.cancel(job.id)
    wait_for(lambda: client.job(job.id).status.value == "canceled", timeout=5)
    assert time.monotonic() - started < 2.0


def test_gpu_job_with_fallback_renders_on_the_cpu_and_says_so_per_frame(farm, client, sample_blend):
    job = client.submit(sample_blend, "1-2", name="g2", gpu=True, allow_cpu_fallback=True).job
    done = wait_for(lambda: client.job(job.id).status in JOB_TERMINAL and client.job(job.id))
    assert done.status.value == "completed", done.status_reason
    assert {f.device for f in client.frames(job.id).frames} == {"CPU"}
