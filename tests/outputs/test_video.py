"""Video-output scenes on the session's embedded farm (real Ray, Blender and ffmpeg): chunks render frames, the farm
encodes the video the scene asks for (container, codec, fps, sequencer sound) as the job's product, meters it, and
shows why when it cannot; the frames stay, and another company cannot reach the product."""

from __future__ import annotations

import json
import math
import re
import secrets
import shutil
import struct
import subprocess
import sys
import time
import wave
from fractions import Fraction
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from farm.cli.main import app
from farm.client import FarmClient
from farm.client.admin import AdminClient
from farm.contract import CompanyCreate, JobOut, Role, TokenCreate
from tests.outputs.conftest import wait_job
from tests.outputs.test_video_ffmpeg import probe

pytestmark = [
    pytest.mark.ray,
    pytest.mark.blender,
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed"),
]

FRAMES = 6
FPS = 24

#: Run in a child Python (bpy stays out of the test process): a tiny Cycles scene whose output is a video.
BUILD = """
import json, math, sys, bpy
spec = json.loads(sys.argv[-1])
bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
render = scene.render
render.engine = "CYCLES"
render.resolution_x, render.resolution_y, render.resolution_percentage = 32, 32, 100
scene.cycles.samples = 1
scene.cycles.use_denoising = False
bpy.ops.mesh.primitive_cube_add(size=2.0)
cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
cam.location, cam.rotation_euler = (0.0, -6.0, 0.0), (math.pi / 2, 0.0, 0.0)
scene.collection.objects.link(cam)
scene.camera = cam
scene.frame_start, scene.frame_end = 1, spec["frames"]
render.fps, render.fps_base = spec["fps"], 1.0
render.image_settings.media_type = "VIDEO"
render.image_settings.file_format = "FFMPEG"
render.ffmpeg.format = spec["container"]
render.ffmpeg.codec = spec["codec"]
render.ffmpeg.audio_codec = spec["audio"]
render.filepath = "//movie/clip_"
if spec.get("sound"):
    scene.sequence_editor_create()
    scene.sequence_editor.strips.new_sound("tone", "//sound/tone.wav", 1, 1)
bpy.ops.wm.save_as_mainfile(filepath=spec["out"], relative_remap=True)
"""


def tone(path: Path, seconds: float, rate: int = 44100) -> Path:
    """A mono 440 Hz WAV written with the stdlib ``wave`` module."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(
            b"".join(
                struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
                for i in range(int(seconds * rate))
            )
        )
    return path


def build(folder: Path, name: str, **spec: object) -> Path:
    out = folder / f"{name}.blend"
    body = {"out": str(out), "frames": FRAMES, "fps": FPS, "container": "MPEG4", "codec": "H264", "audio": "AAC"}
    body |= spec
    result = subprocess.run(
        [sys.executable, "-c", BUILD, json.dumps(body)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0 and out.exists(), result.stderr[-3000:]
    return out


def wait_product(client: FarmClient, job_id: str, timeout: float = 120.0) -> JobOut:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.job(job_id)
        if job.product is not None:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} got no product within {timeout}s")


@pytest.fixture(scope="module")
def video_job(farm: object, tmp_path_factory: pytest.TempPathFactory) -> tuple[JobOut, FarmClient]:
    """A video scene with a sound strip, submitted with no format override and rendered to its end."""
    from farm.runtime.embedded import EmbeddedFarm

    assert isinstance(farm, EmbeddedFarm)
    project = tmp_path_factory.mktemp("video-project")
    tone(project / "sound" / "tone.wav", 2.0)
    blend = build(project, "spot", sound=True)
    client = FarmClient(farm.url, farm.admin_token)
    job = wait_job(client, client.submit(blend, f"1-{FRAMES}", name="spot 010", chunk_size=3).job.id)
    assert isinstance(job, JobOut) and job.status.value == "completed", job.status_reason
    return wait_product(client, job.id), client


def test_the_video_the_scene_asks_for_is_the_jobs_product(
    video_job: tuple[JobOut, FarmClient], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, farm: object
) -> None:
    job, client = video_job
    product = job.product
    assert product is not None and product.status.value == "ready", product
    assert product.name == "spot_010.mp4" and "H264" in product.detail and "AAC" in product.detail

    # `farm download` brings the frames and, next to them, the video; `--video` only the video.
    monkeypatch.setenv("FARM_URL", farm.url)  # type: ignore[attr-defined]
    monkeypatch.setenv("FARM_TOKEN", farm.admin_token)  # type: ignore[attr-defined]
    result = CliRunner().invoke(app, ["download", job.id, "--out", str(tmp_path / "all")])
    assert result.exit_code == 0, result.output
    assert f"{FRAMES} frame(s) downloaded" in result.output and "spot_010.mp4" in result.output
    frames = sorted((tmp_path / "all").rglob("*.png"))
    assert len(frames) == FRAMES and all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in frames)
    shown = CliRunner().invoke(app, ["status", job.id])
    assert shown.exit_code == 0 and "video: spot_010.mp4" in shown.output, shown.output
    only = CliRunner().invoke(app, ["download", job.id, "--out", str(tmp_path / "video"), "--video"])
    assert only.exit_code == 0, only.output
    assert [p.name for p in (tmp_path / "video").iterdir()] == ["spot_010.mp4"]
    movie = tmp_path / "all" / "spot_010.mp4"
    assert movie.read_bytes() == (tmp_path / "video" / "spot_010.mp4").read_bytes()

    info = probe(movie)
    assert "mp4" in str(info["format"]["format_name"])  # type: ignore[index]
    streams = info["streams"]
    video = [s for s in streams if s["codec_type"] == "video"]  # type: ignore[union-attr,index,attr-defined]
    audio = [s for s in streams if s["codec_type"] == "audio"]  # type: ignore[union-attr,index,attr-defined]
    assert len(video) == 1 and video[0]["codec_name"] == "h264"
    assert int(video[0]["nb_read_frames"]) == FRAMES and Fraction(video[0]["r_frame_rate"]) == FPS
    assert (video[0]["width"], video[0]["height"]) == (32, 32)
    assert len(audio) == 1 and audio[0]["codec_name"] == "aac"
    # The sound covers the frames' range (6 frames at 24 fps: 0.25 s), not the 2 s WAV.
    assert abs(float(audio[0]["duration"]) - FRAMES / FPS) < 0.1

    # The frames stay available, each with its own route.
    assert len(client.frames(job.id).frames) == FRAMES


def test_the_encode_is_metered_to_the_company(video_job: tuple[JobOut, FarmClient], farm: object) -> None:
    from sqlalchemy import select

    from farm.db.models import UsageEntry

    job, _client = video_job
    with farm.db.session() as s:  # type: ignore[attr-defined]
        rows = list(s.scalars(select(UsageEntry).where(UsageEntry.job_id == job.id, UsageEntry.outcome == "video")))
    assert len(rows) == 1 and rows[0].resource == "cpu" and rows[0].seconds > 0
    assert rows[0].task_id is None and rows[0].ended_at >= rows[0].started_at


def test_another_company_gets_404_on_the_product(video_job: tuple[JobOut, FarmClient], farm: object) -> None:
    job, client = video_job
    other = f"other-{secrets.token_hex(3)}"
    with AdminClient(farm.url, farm.admin_token) as admin:  # type: ignore[attr-defined]
        admin.create_company(CompanyCreate(name=other))
        token = admin.create_token(TokenCreate(company=other, role=Role.COMPANY_ADMIN)).token
    for path in (f"/api/v1/jobs/{job.id}/product", f"/api/v1/jobs/{job.id}"):
        answer = httpx.get(farm.url + path, headers={"Authorization": f"Bearer {token}"})  # type: ignore[attr-defined]
        assert answer.status_code == 404, (path, answer.text)
    mine = httpx.get(
        farm.url + f"/api/v1/jobs/{job.id}/product", headers={"Authorization": f"Bearer {farm.admin_token}"}
    )  # type: ignore[attr-defined]
    assert mine.status_code == 200 and mine.content[4:8] == b"ftyp"


def test_the_monitor_plays_and_offers_the_video(video_job: tuple[JobOut, FarmClient], farm: object) -> None:
    job, _client = video_job
    with httpx.Client(base_url=farm.url) as web:  # type: ignore[attr-defined]
        form = web.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf is not None, form.text[:500]
        token = farm.admin_token  # type: ignore[attr-defined]
        login = web.post("/login", data={"token": token, "csrf": csrf.group(1)}, follow_redirects=False)
        assert login.status_code in (302, 303), login.text
        page = web.get(f"/jobs/{job.id}")
        assert page.status_code == 200
        assert f'src="/jobs/{job.id}/product"' in page.text and "spot_010.mp4" in page.text
        ranged = web.get(f"/jobs/{job.id}/product", headers={"Range": "bytes=0-7"})
        assert ranged.status_code == 206 and ranged.content[4:8] == b"ftyp"


def test_an_encode_that_fails_says_why_and_keeps_the_frames(client: FarmClient, tmp_path: Path) -> None:
    # DV has fixed frame sizes (720x480/576): a 32x32 DV video cannot be made, and the job must say so.
    blend = build(tmp_path, "dv", container="DV", codec="DV", audio="NONE", frames=2)
    job = wait_job(client, client.submit(blend, "1-2", name="dv").job.id)
    assert isinstance(job, JobOut) and job.status.value == "completed", job.status_reason
    product = wait_product(client, job.id).product
    assert product is not None and product.status.value == "failed"
    assert "ffmpeg failed" in product.reason and product.size == 0
    assert len(client.frames(job.id).frames) == 2
    with pytest.raises(Exception, match="failed"):
        client.download_product(job.id, tmp_path / "dl")


def test_a_scene_that_is_not_a_video_gets_no_product(client: FarmClient, farm: object, sample_blend: Path) -> None:
    from farm.db.models import JobProduct

    job = wait_job(client, client.submit(sample_blend, "1", name="stills").job.id)
    assert isinstance(job, JobOut) and job.status.value == "completed"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with farm.db.session() as s:  # type: ignore[attr-defined]
            row = s.get(JobProduct, job.id)
            if row is not None and row.status == "none":
                break
        time.sleep(0.2)
    else:
        raise AssertionError("the product check of a stills job never ended")
    assert client.job(job.id).product is None
    from sqlalchemy import select

    from farm.db.models import UsageEntry

    with farm.db.session() as s:  # type: ignore[attr-defined]
        outcomes = set(s.scalars(select(UsageEntry.outcome).where(UsageEntry.job_id == job.id)))
    assert not outcomes & {"video", "video-failed"}, "reading a stills scene is not billed as a video"


def test_an_encode_left_by_a_stopped_scheduler_is_made_again(
    video_job: tuple[JobOut, FarmClient], farm: object
) -> None:
    from farm.db.models import JobProduct
    from farm.media.video import VideoMaker
    from storage.factory import store_config

    job, client = video_job
    with farm.db.session() as s:  # type: ignore[attr-defined]
        row = s.get(JobProduct, job.id)
        assert row is not None
        row.status, row.sha256 = "checking", ""  # as a scheduler that died mid-encode left it
    assert client.job(job.id).product is None
    maker = VideoMaker(farm.db, store_config(farm.settings), farm.clock)  # type: ignore[attr-defined]
    deadline = time.monotonic() + 120
    while client.job(job.id).product is None:
        assert time.monotonic() < deadline, "the left encode was not made again"
        maker.collect()
        time.sleep(0.2)
    again = client.job(job.id).product
    assert again is not None and again.status.value == "ready" and again.sha256 == job.product.sha256  # type: ignore[union-attr]
