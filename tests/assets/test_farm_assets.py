"""On the session's embedded farm (real Ray and Blender): outside-project textures render, the preview movie
is stored, a missing texture is reported at submit, and ``farm admin gc`` does a dry run."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from farm.cli.main import app
from farm.client import ClientError, FarmClient
from farm.client.packing import OUTSIDE_PROJECT
from farm.contract import JobOut
from tests.assets.helpers import build_blend, texture


def wait(client: FarmClient, job_id: str, timeout: float = 120) -> JobOut:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.job(job_id)
        if job.status.value in ("completed", "failed", "canceled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {timeout}s")


def test_a_texture_outside_the_project_is_packed_and_rendered(client: FarmClient, tmp_path: Path, farm: object) -> None:
    red = texture(tmp_path / "elsewhere" / "red.png", (255, 0, 0))
    blend = build_blend(tmp_path / "project" / "scene.blend", [str(red)])
    result = client.submit(blend, "1-2", name="outside", samples=1)
    assert result.uploaded_bytes > 0
    job = wait(client, result.job.id)
    assert job.status.value == "completed", client.logs(job.id)
    client.download(job.id, tmp_path / "out")
    frame = Image.open(tmp_path / "out" / "frame_000001.png").convert("RGB")
    r, g, b = frame.getpixel((frame.width // 2, frame.height // 2))[:3]
    assert (r, g, b) == (255, 0, 0), "the outside texture did not resolve (magenta means missing)"

    # The preview movie follows the last frame, off the scheduler's thread.
    import shutil

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed: no preview is made (scripts/system-deps.sh installs it)")
    deadline = time.monotonic() + 60
    while True:
        try:
            movie = client.download_preview(job.id, tmp_path / "preview.mp4")
            break
        except ClientError as exc:
            assert exc.status == 404 and time.monotonic() < deadline, exc
            time.sleep(0.3)
    assert movie.read_bytes()[4:8] == b"ftyp"


def test_the_pack_names_outside_files_the_way_bat_does(tmp_path: Path) -> None:
    from farm.client.packing import trace

    far = texture(tmp_path / "far" / "t.png", (1, 2, 3))
    blend = build_blend(tmp_path / "p" / "scene.blend", [str(far)])
    with trace(blend) as pack:
        assert f"{OUTSIDE_PROJECT}{far.as_posix()}" in pack.files


def test_a_missing_texture_is_reported_and_allow_missing_submits_anyway(
    farm: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from farm.runtime.embedded import EmbeddedFarm

    assert isinstance(farm, EmbeddedFarm)
    monkeypatch.setenv("FARM_URL", farm.url)
    monkeypatch.setenv("FARM_TOKEN", farm.admin_token)
    texture(tmp_path / "textures" / "ok.png", (0, 255, 0))
    blend = build_blend(tmp_path / "scene.blend", ["//textures/ok.png", "//textures/gone.png"])
    runner = CliRunner()
    refused = runner.invoke(app, ["submit", str(blend), "--frames", "1"])
    assert refused.exit_code == 2
    assert "gone.png" in refused.output and "--allow-missing" in refused.output

    submitted = runner.invoke(app, ["submit", str(blend), "--frames", "1", "--allow-missing", "--json"])
    assert submitted.exit_code == 0, submitted.output
    assert "missing file (submitted anyway)" in submitted.output and "gone.png" in submitted.output
    with FarmClient(farm.url, farm.admin_token) as client:
        job_id = [line for line in submitted.output.splitlines() if line.startswith("{")][0]
        import json

        job = json.loads(job_id)
        assert {"uploaded_bytes", "reused_bytes"} <= set(job)
        if client.job(job["job_id"]).status.value not in ("completed", "failed", "canceled"):
            try:
                client.cancel(job["job_id"])
            except ClientError as exc:  # it may finish between the two calls
                assert exc.status == 409 and "nothing to cancel" in exc.detail


def test_farm_admin_gc_is_a_dry_run_by_default(farm: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from farm.runtime.embedded import EmbeddedFarm

    assert isinstance(farm, EmbeddedFarm)
    monkeypatch.setenv("FARM_URL", farm.url)
    monkeypatch.setenv("FARM_TOKEN", farm.admin_token)
    result = CliRunner().invoke(app, ["admin", "gc", "--retention-days", "30"])
    assert result.exit_code == 0, result.output
    assert "would delete 0 blob(s)" in result.output and "--apply" in result.output
