"""The generated sample scene: files, caching, and what real bpy finds in it (and renders from it)."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from farm.sample import STAMP_NAME, generate_sample

pytestmark = pytest.mark.blender

INSPECT = textwrap.dedent(
    """
    import json, sys
    import bpy

    blend, frame_png = sys.argv[1], sys.argv[2]
    bpy.ops.wm.open_mainfile(filepath=blend)
    scene = bpy.context.scene
    images = [
        {"name": im.name, "filepath": im.filepath, "packed": im.packed_file is not None}
        for im in bpy.data.images if im.source == "FILE"
    ]
    cube = bpy.data.objects["Cube"]
    scene.frame_set(1)
    first = [list(row) for row in cube.matrix_world]
    scene.frame_set(scene.frame_end)
    last = [list(row) for row in cube.matrix_world]
    scene.frame_set(1)
    # render(write_still=True) does not expand '#', so the output path names the file itself.
    scene.render.filepath = frame_png
    bpy.ops.render.render(write_still=True)
    print("RESULT=" + json.dumps({
        "frame_start": scene.frame_start, "frame_end": scene.frame_end,
        "engine": scene.render.engine, "device": scene.cycles.device, "samples": scene.cycles.samples,
        "resolution": [scene.render.resolution_x, scene.render.resolution_y,
                       scene.render.resolution_percentage],
        "file_format": scene.render.image_settings.file_format,
        "film_transparent": scene.render.film_transparent,
        "denoising": scene.cycles.use_denoising,
        "images": images, "frames_differ": first != last,
        "camera": scene.camera.name if scene.camera else None,
    }))
    """
)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    generate_sample(out, resolution=(32, 32), samples=1)
    return out


def test_files_exist(sample_dir: Path) -> None:
    assert (sample_dir / "scene.blend").is_file()
    texture = sample_dir / "textures" / "checker.png"
    assert texture.is_file() and png_size(texture) == (64, 64)
    stamp = json.loads((sample_dir / STAMP_NAME).read_text())
    assert stamp["resolution"] == [32, 32] and stamp["samples"] == 1 and stamp["frames"] == 48


def test_regeneration_is_skipped_when_stamp_matches(sample_dir: Path) -> None:
    blend = sample_dir / "scene.blend"
    before = blend.stat().st_mtime_ns
    # A python that cannot run proves that no child process is started for a matching stamp.
    assert generate_sample(sample_dir, resolution=(32, 32), samples=1, python="/nonexistent/python") == blend
    assert blend.stat().st_mtime_ns == before


def test_failure_raises_with_stderr_tail(tmp_path: Path) -> None:
    broken = tmp_path / "broken-python"
    broken.write_text("#!/bin/sh\necho 'bpy exploded: no such scene' >&2\nexit 3\n")
    broken.chmod(0o755)
    with pytest.raises(RuntimeError, match=r"(?s)exit 3.*bpy exploded: no such scene"):
        generate_sample(tmp_path / "out", python=str(broken))
    with pytest.raises(ValueError):
        generate_sample(tmp_path / "out", frames=1)


def test_bpy_reads_and_renders_the_scene(sample_dir: Path, tmp_path: Path) -> None:
    script = tmp_path / "inspect_sample.py"
    script.write_text(INSPECT)
    frame_png = tmp_path / "frame_0001.png"
    proc = subprocess.run(
        [sys.executable, str(script), str(sample_dir / "scene.blend"), str(frame_png)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT=")]
    assert lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(lines[-1].removeprefix("RESULT="))

    assert (result["frame_start"], result["frame_end"]) == (1, 48)
    assert result["engine"] == "CYCLES" and result["device"] == "CPU" and result["samples"] == 1
    assert result["resolution"] == [32, 32, 100]
    assert result["file_format"] == "PNG" and result["film_transparent"] is False
    assert result["denoising"] is False
    checker = {"name": "checker.png", "filepath": "//textures/checker.png", "packed": False}
    assert result["images"] == [checker]
    assert result["frames_differ"] is True
    assert result["camera"] == "Camera"
    assert png_size(frame_png) == (32, 32)
