"""End to end on the embedded farm: real Ray, real Blender, the real CLI. One rendered job, many checks."""

import hashlib
import json
import struct
import time

import pytest
from typer.testing import CliRunner

from farm.cli.main import app
from farm.contract import JobCreate, ManifestEntry
from farm.domain.states import JOB_TERMINAL

pytestmark = [pytest.mark.ray, pytest.mark.blender]


def wait_for(client, job_id, timeout=180.0, until=lambda job: job.status in JOB_TERMINAL):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.job(job_id)
        if until(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {client.job(job_id).status} after {timeout}s")


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def cli(farm, *args):
    result = CliRunner().invoke(app, list(args), env={"FARM_URL": farm.url, "FARM_TOKEN": farm.admin_token})
    return result


@pytest.fixture(scope="module")
def rendered(farm, sample_blend):
    from farm.client import FarmClient

    with FarmClient(farm.url, farm.admin_token) as client:
        started = time.monotonic()
        result = client.submit(sample_blend, "1-6", name="six", chunk_size=2)
        job = wait_for(client, result.job.id)
        wall = time.monotonic() - started
    return {"job": job, "submit": result, "wall": wall}


def test_job_completes_with_every_frame(rendered):
    job = rendered["job"]
    assert job.status.value == "completed", job.status_reason
    assert (job.frames_total, job.frames_done, job.tasks_total, job.tasks_done) == (6, 6, 3, 3)


def test_six_pngs_of_32x32_in_storage(farm, rendered):
    job = rendered["job"]
    company = job.company
    keys = sorted(info.key for info in farm.store.list("outputs/"))
    ours = [k for k in keys if f"/{job.id}/" in k]
    assert [k.rsplit("/", 1)[1] for k in ours] == [f"frame_{i:06d}.png" for i in range(1, 7)]
    assert company
    for key in ours:
        data = b"".join(farm.store.open(key))
        assert png_size(data) == (32, 32)


def test_frames_differ_because_the_scene_is_animated(client, rendered):
    frames = client.frames(rendered["job"].id).frames
    assert len({f.sha256 for f in frames}) == 6
    assert {f.device for f in frames} == {"CPU"}


def test_download_via_cli_and_resume(farm, rendered, tmp_path):
    job_id = rendered["job"].id
    result = cli(farm, "download", job_id, "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [f"frame_{i:06d}.png" for i in range(1, 7)]
    assert all(png_size((tmp_path / f).read_bytes()) == (32, 32) for f in files)
    again = cli(farm, "download", job_id, "--out", str(tmp_path))
    assert "0 frame(s) downloaded, 6 already present" in again.output


def test_status_json_via_cli(farm, rendered):
    result = cli(farm, "status", rendered["job"].id, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["id"] == rendered["job"].id
    assert (data["status"], data["frames_total"], data["frames_done"]) == ("completed", 6, 6)


def test_jobs_and_logs_via_cli(farm, rendered):
    job_id = rendered["job"].id
    listed = json.loads(cli(farm, "jobs", "--json").output)["jobs"]
    assert job_id in [j["id"] for j in listed]
    log = cli(farm, "logs", job_id).output
    assert "chunk 0 (frames 1-2) attempt 1" in log


def test_ledger_seconds_match_attempt_wall_time(farm, client, rendered):
    job = rendered["job"]
    tasks = client.tasks(job.id).tasks
    attempts = [a for t in tasks for a in t.attempts]
    assert attempts and all(a.status == "completed" for a in attempts)
    attempt_wall = sum((a.ended_at - a.started_at).total_seconds() for a in attempts)
    rows = [r for r in client.usage(per_job=True).rows if r.job_id == job.id]
    assert [r.resource for r in rows] == ["cpu"]
    cpus = farm.pool.slots[0].resources["cpu"]  # one slot using every core: the ledger counts cpu-seconds
    ledger_wall = rows[0].seconds / cpus
    assert abs(ledger_wall - attempt_wall) <= 0.05 * attempt_wall
    # Metered time is real: no more than the job's wall time as the test saw it, and more than Blender's time.
    assert attempt_wall <= rendered["wall"]
    assert attempt_wall >= sum(a.blender_seconds for a in attempts) * 0.95


def test_submit_json_via_cli_reuses_uploaded_blobs(farm, rendered, sample_blend):
    result = cli(farm, "submit", str(sample_blend), "--frames", "1-2", "--chunk", "1", "--json", "--wait")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output.strip().splitlines()[-1])
    assert data["uploaded_bytes"] == 0 and data["reused_bytes"] > 0
    assert data["status"] == "completed" and data["frames_done"] == 2


def test_submit_bad_frames_via_cli_is_a_clear_error(farm, sample_blend):
    result = cli(farm, "submit", str(sample_blend), "--frames", "9-1")
    assert result.exit_code == 2
    assert "reversed" in result.output


def test_cancel_mid_frame_stops_within_two_seconds(farm, client, sample_blend):
    # Big enough that one frame takes seconds, so the cancel lands inside a frame.
    result = client.submit(
        sample_blend, "1-20", name="long", chunk_size=10, resolution="320x240", samples=256
    )
    job_id = result.job.id
    wait_for(client, job_id, timeout=120, until=lambda job: job.frames_done >= 1)
    time.sleep(0.3)
    asked = time.monotonic()
    canceled = client.cancel(job_id)
    assert canceled.status.value in ("cancel-requested", "canceled")
    job = wait_for(client, job_id, timeout=10)
    took = time.monotonic() - asked
    assert job.status.value == "canceled"
    assert took < 2.0, f"cancel took {took:.2f}s"
    frames_at_cancel = len(client.frames(job_id).frames)
    stored_at_cancel = [i.key for i in farm.store.list("outputs/") if f"/{job_id}/" in i.key]
    assert frames_at_cancel < 20
    time.sleep(2.0)
    assert len(client.frames(job_id).frames) == frames_at_cancel
    assert [i.key for i in farm.store.list("outputs/") if f"/{job_id}/" in i.key] == stored_at_cancel
    statuses = {t.status.value for t in client.tasks(job_id).tasks}
    assert statuses <= {"canceled", "completed"}


def test_blend_that_cannot_be_opened_fails_with_blenders_error(farm, client):
    data = b"this is not a blend file" * 40
    digest = hashlib.sha256(data).hexdigest()
    assert client.missing_blobs([digest]) == [digest]
    path = farm.data_dir / "broken.blend"
    path.write_bytes(data)
    client.upload_blob(path, digest, len(data))
    spec = JobCreate(
        name="broken",
        blend_file="broken.blend",
        manifest={"broken.blend": ManifestEntry(sha256=digest, size=len(data))},
        frames="1-2",
        chunk_size=2,
        max_attempts=1,
    )
    job = wait_for(client, client.create_job(spec).id, timeout=60)
    assert job.status.value == "failed"
    assert "1 of 1 chunk(s) failed" in job.status_reason
    attempt = client.tasks(job.id).tasks[0].attempts[0]
    assert "File format is not supported" in attempt.reason
    assert "File format is not supported" in client.logs(job.id)


def test_ray_listens_on_loopback_only(farm):
    import subprocess

    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    ray_lines = [ln for ln in out.splitlines() if any(n in ln for n in ("raylet", "gcs_server", "ray::"))]
    assert ray_lines, out
    for ln in ray_lines:
        local = ln.split()[3]
        assert local.startswith(("127.0.0.1:", "[::1]:", "[::ffff:127.0.0.1]:", "localhost:")), ln


def test_submit_flags_reach_the_job_settings(farm, sample_blend):
    from farm.db.models import Job

    result = cli(
        farm, "submit", str(sample_blend), "--frames", "1", "--chunk", "1", "--json", "--max-attempts", "2",
        "--on-chunk-failure", "fail-job", "--no-preview", "--no-cpu-fallback", "--name", "flags",
    )
    assert result.exit_code == 0, result.output
    job_id = json.loads(result.output.strip().splitlines()[-1])["job_id"]
    with farm.db.session() as s:
        settings = s.get(Job, job_id).settings
    assert settings["max_attempts"] == 2 and settings["on_chunk_failure"] == "fail-job"
    assert settings["preview"] is False and settings["allow_cpu_fallback"] is False
    bad = cli(farm, "submit", str(sample_blend), "--frames", "1", "--on-chunk-failure", "explode")
    assert bad.exit_code == 2 and "--on-chunk-failure" in bad.output


def test_the_log_of_a_running_chunk_is_visible_before_it_ends(farm, client, sample_blend):
    result = client.submit(sample_blend, "1-12", name="live-log", chunk_size=12, resolution="160x120", samples=64)
    job_id = result.job.id
    try:
        wait_for(client, job_id, timeout=120, until=lambda job: job.frames_done >= 2)
        deadline = time.monotonic() + 10
        while True:
            attempt = client.tasks(job_id).tasks[0].attempts[-1]
            if attempt.ended_at is None and "Saved:" in attempt.log_tail:
                break
            assert attempt.ended_at is None, "the chunk ended before its log was seen live"
            assert time.monotonic() < deadline, f"no live log: {attempt.log_tail!r}"
            time.sleep(0.1)
        assert "Saved:" in client.logs(job_id)
    finally:
        client.cancel(job_id)
        wait_for(client, job_id, timeout=30)
