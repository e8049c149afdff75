"""Radiance HDR and OpenEXR library assets get thumbnails (issue 20): the reader against files Blender writes and
files written by hand in the older layouts, pixel values checked; then the library page's thumbnail of an HDRI."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from farm.errors import BadRequest
from farm.media.radiance import read_hdr
from farm.media.thumbnails import make_thumbnail, tone_map
from tests.platform.test_pages import login

# A 64x32 float image: left half (0.25, 0.5, 1.0), right half (4.0, 2.0, 0.5), the top row red (8, 0, 0); saved by
# Blender as Radiance HDR (its writer uses the adaptive run-length scheme for rows of 8 or more pixels).
BLENDER_HDR = """
import sys, bpy
out = sys.argv[-1]
image = bpy.data.images.new("sky", 64, 32, float_buffer=True)
pixels = []
for y in range(32):  # Blender's rows go bottom-up: y = 31 is the top row
    for x in range(64):
        if y == 31:
            pixels += [8.0, 0.0, 0.0, 1.0]
        else:
            pixels += [0.25, 0.5, 1.0, 1.0] if x < 32 else [4.0, 2.0, 0.5, 1.0]
image.pixels = pixels
# Saved through the render path, which writes a float format's pixels linear (Image.save would encode them).
settings = bpy.context.scene.render.image_settings
settings.media_type, settings.file_format = "IMAGE", "HDR"
image.save_render(out, scene=bpy.context.scene)
"""


def expected() -> np.ndarray:
    rgb = np.zeros((32, 64, 3), dtype=np.float32)
    rgb[:, :32] = (0.25, 0.5, 1.0)
    rgb[:, 32:] = (4.0, 2.0, 0.5)
    rgb[0] = (8.0, 0.0, 0.0)
    return rgb


@pytest.fixture(scope="module")
def blender_hdr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hdr") / "sky.hdr"
    proc = subprocess.run([sys.executable, "-c", BLENDER_HDR, str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and out.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    return out


def rgbe(value: tuple[float, float, float]) -> bytes:
    """Ward's encoding of one pixel (the reference, written out here independently of the reader)."""
    top = max(value)
    if top < 1e-32:
        return b"\0\0\0\0"
    mantissa, exponent = np.frexp(top)
    scale = mantissa * 256.0 / top
    return bytes([int(c * scale) for c in value] + [int(exponent) + 128])


def close_to(got: np.ndarray, want: np.ndarray) -> None:
    """Equal within RGBE's precision: 8 bits of mantissa under the pixel's shared exponent."""
    step = np.maximum(want.max(axis=-1, keepdims=True), 1e-6) / 128.0
    assert got.shape == want.shape
    assert np.all(np.abs(got - want) <= step), np.abs(got - want).max()


def test_a_blender_hdr_is_read_with_its_values_and_orientation(blender_hdr):
    assert blender_hdr.read_bytes().startswith(b"#?RADIANCE")
    rgb = read_hdr(blender_hdr)
    assert rgb.shape == (32, 64, 3)
    close_to(rgb, expected())


def test_flat_and_old_run_length_files_in_other_orientations(tmp_path):
    # 2 scanlines of 4 pixels stored bottom-up (+Y), flat; the second row uses the old repeat marker (1 1 1 n).
    top, bottom = (1.0, 0.5, 0.25), (0.0, 0.125, 2.0)
    body = rgbe(bottom) * 4 + rgbe(top) + b"\x01\x01\x01\x03"
    path = tmp_path / "flat.hdr"
    path.write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\nEXPOSURE=2.0\n\n+Y 2 +X 4\n" + body)
    rgb = read_hdr(path)
    assert rgb.shape == (2, 4, 3)
    # EXPOSURE=2 says the stored values were doubled: they are halved back.
    close_to(rgb[0], np.tile(np.array(top, dtype=np.float32) / 2, (4, 1)))
    close_to(rgb[1], np.tile(np.array(bottom, dtype=np.float32) / 2, (4, 1)))
    # Column-major (+X first): 3 scanlines are the columns left to right, each top-down.
    cols = [rgbe((float(x), 0.0, 0.0)) * 2 for x in (1, 2, 3)]
    path.write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n+X 3 -Y 2\n" + b"".join(cols))
    rgb = read_hdr(path)
    assert rgb.shape == (2, 3, 3)
    close_to(rgb, np.array([[[1, 0, 0], [2, 0, 0], [3, 0, 0]]] * 2, dtype=np.float32))


def test_downsampled_reads_and_broken_files(blender_hdr, tmp_path):
    small = read_hdr(blender_hdr, max_width=8)  # every 4th row and column: width under twice 8
    assert small.shape == (8, 16, 3)
    close_to(small, expected()[::4, ::4])
    data = blender_hdr.read_bytes()
    for name, broken in (
        ("cut.hdr", data[: len(data) // 2]),
        ("notes.hdr", b"just some text\n"),
        ("format.hdr", data.replace(b"32-bit_rle_rgbe", b"32-bit_rle_abcd")),
        ("size.hdr", b"#?RADIANCE\n\n-Y 0 +X 9\n"),
    ):
        path = tmp_path / name
        path.write_bytes(broken)
        with pytest.raises(BadRequest, match="not a readable Radiance HDR"):
            read_hdr(path)


def test_the_thumbnail_of_an_hdr_is_its_tone_mapped_pixels(blender_hdr):
    with Image.open(io.BytesIO(make_thumbnail(blender_hdr))) as image:
        assert image.size == (64, 32)
        got = np.asarray(image.convert("RGB"), dtype=np.int32)
    want = tone_map(expected()).astype(np.int32)
    assert np.abs(got[4:, :] - want[4:, :]).mean() < 4  # JPEG noise; rows away from the red top row
    left, right = got[16, 8], got[16, 56]
    assert left[2] > left[1] > left[0] and right[0] > right[1] > right[2], (left, right)


def test_the_library_page_shows_hdr_and_exr_thumbnails(api, blender_hdr, tmp_path):
    from tests import factories

    sky = blender_hdr.read_bytes()
    who = api.mint("studio-hdr")
    sha = api.upload(sky, who)
    asset = api.publish(sha, who, name="dusk sky", filename="dusk.hdr")
    exr_path = tmp_path / "plate.exr"
    _write_exr(exr_path)
    plate = api.publish(api.upload(exr_path.read_bytes(), who), who, name="plate", filename="plate.exr")
    token = who["Authorization"].split()[1]
    with factories.client(api.farm, auth=False, base_url="http://127.0.0.1") as http:
        login(http, token)
        page = http.get("/library")
        assert f"/library/{asset['id']}/thumb" in page.text and f"/library/{plate['id']}/thumb" in page.text
        thumb = http.get(f"/library/{asset['id']}/thumb")
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        with Image.open(io.BytesIO(thumb.content)) as image:
            assert image.size == (64, 32)
            r, g, b = image.convert("RGB").getpixel((56, 16))
            assert r > g > b and r > 150, (r, g, b)
        with Image.open(io.BytesIO(http.get(f"/library/{plate['id']}/thumb").content)) as image:
            got = np.asarray(image.convert("RGB").getpixel((4, 4)))
        want = tone_map(np.array([[[0.1, 0.8, 0.1]]], dtype=np.float32))[0, 0]  # sRGB (89, 231, 89)
        assert np.abs(got - want.astype(int)).max() <= 3, (got, want)


def _write_exr(path: Path) -> None:
    """An 8x8 plain EXR of linear green (0.1, 0.8, 0.1)."""
    import OpenEXR

    channels = {c: np.full((8, 8), v, dtype=np.float32) for c, v in (("R", 0.1), ("G", 0.8), ("B", 0.1))}
    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, channels) as exr:
        exr.write(str(path))
