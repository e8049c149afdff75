"""Thumbnails and the preview movie from every format the farm writes (real Blender renders, no farm)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from farm.media.preview import render_preview
from farm.media.thumbnails import make_thumbnail
from storage.local import LocalDirStore
from workers.renderer import BlenderRenderer, ChunkSpec, FrameDone

pytestmark = [pytest.mark.blender]

FORMATS = ["scene", "PNG", "JPEG", "TIFF", "WEBP", "EXR", "EXR_MULTILAYER"]


@pytest.fixture(scope="module")
def rendered(scenes: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """markers.blend frame 1 (CamRed: a red emitter) and 3 (CamBlue), in every format."""
    work = tmp_path_factory.mktemp("thumb-render")
    renderer = BlenderRenderer(work / "blender")
    out: dict[str, list[Path]] = {}
    try:
        for fmt in FORMATS:
            done: list[FrameDone] = []
            spec = ChunkSpec("job-t", scenes / "markers.blend", [1, 3], work / fmt, {"output_format": fmt}, f"t:{fmt}")
            result = renderer.render(spec, done.append, lambda _f: None, lambda: False)
            assert result.outcome == "completed", result.reason
            out[fmt] = [d.path for d in done]
    finally:
        renderer.close()
    return out


def _centre(jpeg: bytes, tmp: Path) -> tuple[int, int, int]:
    path = tmp / "t.jpg"
    path.write_bytes(jpeg)
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.int32)
    r, g, b = pixels[pixels.shape[0] // 2, pixels.shape[1] // 2]
    return int(r), int(g), int(b)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_gets_a_thumbnail_with_the_right_colour(rendered, fmt, tmp_path):
    red_frame, blue_frame = rendered[fmt]
    expected = {"scene": ".png", "PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "WEBP": ".webp"}.get(fmt, ".exr")
    assert red_frame.suffix == expected
    red = _centre(make_thumbnail(red_frame), tmp_path)
    blue = _centre(make_thumbnail(blue_frame), tmp_path)
    assert red[0] > 150 and red[2] < 80, red
    assert blue[2] > 150 and blue[0] < 80, blue


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_the_preview_reads_multilayer_exr_frames(rendered, tmp_path):
    store = LocalDirStore(tmp_path / "store")
    keys = []
    for path in rendered["EXR_MULTILAYER"]:
        key = f"outputs/co/job/{path.name}"
        store.put_file(key, path)
        keys.append(key)
    key = render_preview(store, "co", "job", keys, fps=2)
    assert key is not None
    movie = tmp_path / "preview.mp4"
    store.get_file(key, movie)
    frames = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
            str(movie),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert frames == "2"
    first = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(movie), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    pixels = np.frombuffer(first, dtype=np.uint8).reshape(-1, 3)
    r, g, b = pixels.mean(axis=0)
    assert r > b + 40, (r, g, b)  # frame 1 is CamRed's: mostly red
