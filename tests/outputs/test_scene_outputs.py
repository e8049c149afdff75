"""The farm renders what the scene says: its format, passes, view layers, cameras, frame range and file names.

Every check compares bytes: channels and pixels against a local ``render(write_still=True)`` of the same frame,
colours that tell which camera rendered, the layout ``farm download`` recreates. One embedded farm (the session's).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from farm.cli.main import app
from farm.client.scene_info import read_scene
from farm.media.thumbnails import make_thumbnail
from tests.outputs.conftest import exr_channels, local_render, wait_job

pytestmark = [pytest.mark.ray, pytest.mark.blender]


def cli(farm: object, *args: str) -> object:
    env = {"FARM_URL": farm.url, "FARM_TOKEN": farm.admin_token}  # type: ignore[attr-defined]
    return CliRunner().invoke(app, list(args), env=env)


def names(client: object, job_id: str) -> list[str]:
    return [f.name for f in client.frames(job_id).frames]  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def multilayer_job(farm, scenes):
    """multilayer.blend submitted with no --frames and no --format: the scene's range 2-5x3 and Multilayer EXR."""
    from farm.client import FarmClient

    with FarmClient(farm.url, farm.admin_token) as client:
        result = client.submit(scenes / "multilayer.blend", name="ml", chunk_size=1)
        job = wait_job(client, result.job.id)
    return job


def test_the_scene_range_is_read_without_blender(scenes):
    info = read_scene(scenes / "multilayer.blend")
    assert (info.frame_start, info.frame_end, info.frame_step, info.frames) == (2, 5, 3, "2-5x3")
    assert info.view_layers == ["Beauty", "Extra"] and info.output_path == "//render/shot_####.exr"
    assert read_scene(scenes / "markers.blend").cameras == ["CamBlue", "CamRed"]


def test_multilayer_exr_keeps_every_layer_pass_and_pixel_of_a_local_render(
    farm, client, multilayer_job, scenes, tmp_path
):
    job = multilayer_job
    assert job.status.value == "completed", job.status_reason
    assert job.frames == "2-5x3" and job.output_format.value == "scene"
    assert names(client, job.id) == ["render/shot_0002.exr", "render/shot_0005.exr"]
    got = cli(farm, "download", job.id, "--out", str(tmp_path / "dl"))
    assert got.exit_code == 0, got.output
    for frame in (2, 5):
        farm_file = tmp_path / "dl" / "render" / f"shot_{frame:04d}.exr"
        local = exr_channels(local_render(scenes / "multilayer.blend", frame, tmp_path / f"local_{frame}.exr"))
        farm_channels = exr_channels(farm_file)
        assert sorted(farm_channels) == sorted(local)
        assert {part for part, _ in local} == {
            f"{layer}.{p}" for layer in ("Beauty", "Extra") for p in ("Combined", "Depth", "Normal")
        }
        assert ("Beauty.Depth", "Beauty.Depth.Z") in local and ("Extra.Normal", "Extra.Normal.X") in local
        for key, pixels in local.items():
            assert pixels.dtype == farm_channels[key].dtype, key
            assert np.array_equal(pixels, farm_channels[key]), key
    # The two frames differ (the box moves): the farm did not store one frame twice.
    first = exr_channels(tmp_path / "dl" / "render" / "shot_0002.exr")
    last = exr_channels(tmp_path / "dl" / "render" / "shot_0005.exr")
    assert not np.array_equal(
        first[("Beauty.Combined", "Beauty.Combined.R")], last[("Beauty.Combined", "Beauty.Combined.R")]
    )


def test_the_thumbnail_of_a_multilayer_frame_shows_the_combined_pass(client, multilayer_job, tmp_path):
    client.download(multilayer_job.id, tmp_path)
    thumb = tmp_path / "thumb.jpg"
    thumb.write_bytes(make_thumbnail(tmp_path / "render" / "shot_0002.exr"))
    pixels = np.asarray(Image.open(thumb).convert("RGB"), dtype=np.int32)
    r, g, b = pixels[pixels.shape[0] // 2, pixels.shape[1] // 2]
    assert r > g > b and r > 150, (r, g, b)  # the orange emitter (0.8, 0.3, 0.1), not a depth or normal pass


def test_a_plain_exr_scene_matches_a_local_render(farm, client, scenes, tmp_path):
    job = wait_job(client, client.submit(scenes / "plain_exr.blend", "1", name="plain").job.id)
    assert job.status.value == "completed", job.status_reason
    assert names(client, job.id) == ["plain_0001.exr"]
    client.download(job.id, tmp_path / "dl")
    local = exr_channels(local_render(scenes / "plain_exr.blend", 1, tmp_path / "local.exr"))
    stored = exr_channels(tmp_path / "dl" / "plain_0001.exr")
    assert sorted(stored) == sorted(local)
    assert all(np.array_equal(local[k], stored[k]) and local[k].dtype == stored[k].dtype for k in local)
    import OpenEXR

    with OpenEXR.File(str(tmp_path / "dl" / "plain_0001.exr")) as exr:
        assert exr.header()["compression"] == OpenEXR.PIZ_COMPRESSION  # the scene's codec, kept


def _centre(path: Path) -> tuple[int, int, int]:
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.int32)
    r, g, b = pixels[pixels.shape[0] // 2, pixels.shape[1] // 2]
    return int(r), int(g), int(b)


def test_markers_switch_cameras_and_wait_prints_the_job_id_first(farm, client, scenes, tmp_path):
    result = cli(farm, "submit", str(scenes / "markers.blend"), "--frames", "1,3", "--chunk", "2", "--wait")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("job job-") and "following" in lines[0], result.output
    job_id = lines[0].split()[1]
    assert names(client, job_id) == ["shots/cam_0001.png", "shots/cam_0003.png"]
    client.download(job_id, tmp_path)
    red, blue = _centre(tmp_path / "shots" / "cam_0001.png"), _centre(tmp_path / "shots" / "cam_0003.png")
    assert red[0] > 150 and red[2] < 60, red  # frame 1: marker A binds CamRed
    assert blue[2] > 150 and blue[0] < 60, blue  # frame 3: marker B binds CamBlue
    raw = (tmp_path / "shots" / "cam_0001.png").read_bytes()
    assert raw[24] == 16 and raw[25] == 6  # 16-bit RGBA, as the scene says


def test_camera_layer_format_and_pattern_overrides(farm, client, scenes, tmp_path):
    result = client.submit(
        scenes / "markers.blend",
        "1",
        name="over",
        camera="CamBlue",
        output_format="JPEG",
        output_pattern="{name}/{camera}/{layer}.{frame:04d}{ext}",
    )
    job = wait_job(client, result.job.id)
    assert job.status.value == "completed", job.status_reason
    assert job.camera == "CamBlue" and job.output_pattern.startswith("{name}")
    assert names(client, job.id) == ["over/CamBlue/ViewLayer.0001.jpg"]
    client.download(job.id, tmp_path)
    picture = tmp_path / "over" / "CamBlue" / "ViewLayer.0001.jpg"
    assert picture.read_bytes()[:3] == b"\xff\xd8\xff"
    assert _centre(picture)[2] > 150  # the marker would have chosen CamRed: --camera wins

    only = wait_job(client, client.submit(scenes / "multilayer.blend", "2", name="extra", view_layers=["Extra"]).job.id)
    assert only.status.value == "completed", only.status_reason
    client.download(only.id, tmp_path / "extra")
    parts = {part for part, _ in exr_channels(tmp_path / "extra" / "render" / "shot_0002.exr")}
    assert parts == {"Extra.Combined", "Extra.Depth", "Extra.Normal"}

    single = wait_job(
        client, client.submit(scenes / "multilayer.blend", "2", name="single", output_format="EXR").job.id
    )
    assert single.status.value == "completed", single.status_reason
    client.download(single.id, tmp_path / "single")
    for layer in ("Beauty", "Extra"):  # plain EXR holds one layer: one file each
        channels = exr_channels(tmp_path / "single" / "render" / f"shot_0002_{layer}.exr")
        assert sorted(c for _, c in channels) == ["A", "B", "G", "R"]


def test_a_single_layer_format_with_two_view_layers_stores_one_file_per_layer(farm, client, scenes, tmp_path):
    job = wait_job(client, client.submit(scenes / "layers_png.blend", name="layers", chunk_size=2).job.id)
    assert job.status.value == "completed", job.status_reason
    frames = client.frames(job.id).frames
    assert [f.name for f in frames] == ["out/img_0001_Fore.png", "out/img_0002_Fore.png"]
    assert [[(layer.layer, layer.name) for layer in f.layers] for f in frames][0] == [
        ("Fore", "out/img_0001_Fore.png"),
        ("Back", "out/img_0001_Back.png"),
    ]
    got = cli(farm, "download", job.id, "--out", str(tmp_path / "dl"))
    assert got.exit_code == 0 and "4 frame(s) downloaded" in got.output, got.output
    for layer in ("Fore", "Back"):
        stored = np.asarray(Image.open(tmp_path / "dl" / "out" / f"img_0002_{layer}.png"))
        local = np.asarray(Image.open(local_render(scenes / "layers_png.blend", 2, tmp_path / f"{layer}.png", layer)))
        assert np.array_equal(stored, local), layer
    fore = _centre(tmp_path / "dl" / "out" / "img_0001_Fore.png")
    back = _centre(tmp_path / "dl" / "out" / "img_0001_Back.png")
    # Fore shows the orange emitter; Back, which excludes its collection, only the grey world.
    assert fore[0] - fore[2] > 50 and abs(back[0] - back[2]) < 8, (fore, back)
    # One layer's file on its own; an unknown layer is a 404 naming those there are.
    one = client.http.get(f"/api/v1/jobs/{job.id}/frames/1", params={"layer": "Back"}, follow_redirects=True)
    assert one.status_code == 200 and one.content == (tmp_path / "dl" / "out" / "img_0001_Back.png").read_bytes()
    nope = client.http.get(f"/api/v1/jobs/{job.id}/frames/1", params={"layer": "Nope"})
    assert nope.status_code == 404 and "Fore, Back" in nope.text, nope.text
    # fsck checks every layer's file, not only the first.
    from farm.services.fsck import scan

    back_key = next(i.key for i in farm.store.list("outputs/") if i.key.endswith(f"{job.id}/out/img_0002_Back.png"))
    farm.store.delete(back_key)
    assert (job.id, 2, back_key) in scan(farm.db, farm.store).lost_frames
    # With one layer picked there is one file per frame again.
    picked = wait_job(client, client.submit(scenes / "layers_png.blend", "1", name="b", view_layers=["Back"]).job.id)
    assert [(f.name, f.layers) for f in client.frames(picked.id).frames] == [("out/img_0001.png", [])]


def test_a_video_scene_renders_lossless_png_frames(client, scenes, tmp_path):
    job = wait_job(client, client.submit(scenes / "video.blend", name="video").job.id)
    assert job.status.value == "completed", job.status_reason
    assert names(client, job.id) == ["movie/clip_0001.png", "movie/clip_0002.png"]
    client.download(job.id, tmp_path)
    raw = (tmp_path / "movie" / "clip_0001.png").read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[24] == 8 and raw[25] == 2  # 8-bit RGB, as the video asks


def test_unknown_layers_cameras_formats_and_patterns_are_refused_at_submit(farm, client, scenes):
    bad_layer = cli(farm, "submit", str(scenes / "multilayer.blend"), "--view-layer", "Nope")
    assert bad_layer.exit_code == 2 and "Beauty, Extra" in bad_layer.output, bad_layer.output
    bad_camera = cli(farm, "submit", str(scenes / "markers.blend"), "--camera", "Nope")
    assert bad_camera.exit_code == 2 and "CamBlue, CamRed" in bad_camera.output, bad_camera.output
    bad_format = cli(farm, "submit", str(scenes / "markers.blend"), "--format", "GIF")
    assert bad_format.exit_code == 2 and "EXR_MULTILAYER" in bad_format.output, bad_format.output
    bad_pattern = cli(farm, "submit", str(scenes / "markers.blend"), "--output-pattern", "../{frame}{ext}")
    assert bad_pattern.exit_code == 2 and "'..'" in bad_pattern.output, bad_pattern.output
    same = cli(farm, "submit", str(scenes / "markers.blend"), "--output-pattern", "same{ext}")
    assert same.exit_code == 2 and "{frame}" in same.output, same.output
    # The API says the same to clients that skip the CLI.
    spec = {
        "name": "x",
        "blend_file": "a.blend",
        "manifest": {"a.blend": {"sha256": "0" * 64, "size": 1}},
        "frames": "1",
        "output_pattern": "thumbs/{frame}{ext}",
    }
    answer = client.http.post("/api/v1/jobs", json=spec)
    assert answer.status_code == 422 and "thumbs" in answer.text, answer.text
    answer = client.http.post("/api/v1/jobs", json={**spec, "output_pattern": None, "output_format": "GIF"})
    assert answer.status_code == 422 and "EXR_MULTILAYER" in answer.text, answer.text


def test_a_camera_the_scene_lacks_fails_once_naming_the_cameras(client, scenes):
    """A client that skips the submit-time check (the API alone cannot read the .blend): a scene fault, one
    attempt, with what exists."""
    from farm.client.packing import HashCache, manifest, trace
    from farm.contract import JobCreate

    with trace(scenes / "markers.blend") as pack:
        entries = manifest(pack, HashCache())
        client.upload_missing(pack, entries)
    spec = JobCreate(
        name="nocam", blend_file=pack.blend_rel, manifest=entries, frames="1", camera="Nope", view_layers=[]
    )
    job = wait_job(client, client.create_job(spec).id)
    assert job.status.value == "failed"
    attempts = client.tasks(job.id).tasks[0].attempts
    assert len(attempts) == 1 and attempts[0].fault == "scene", attempts
    assert "no camera 'Nope'" in attempts[0].reason and "CamBlue" in attempts[0].reason, attempts[0].reason


def test_submit_json_with_wait_keeps_stdout_one_object(farm, scenes):
    result = CliRunner().invoke(
        app,
        ["submit", str(scenes / "plain_exr.blend"), "--frames", "2", "--wait", "--json"],
        env={"FARM_URL": farm.url, "FARM_TOKEN": farm.admin_token},
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["status"] == "completed" and data["frames_total"] == 1
