"""Thumbnails and the preview of scene-linear frames show the scene's own view transform (issue 13, item 6).

Three tiny multilayer-EXR scenes (16x16, 4 samples) that differ only in colour management: AgX, Standard, and AgX
with a look, exposure and gamma. Each goes through the session's embedded farm; the thumbnail the render node
stored must match, pixel by pixel (within JPEG and dither noise), a thumbnail of the PNG Blender itself writes for
the same frame with the same view settings, and must differ from the other scenes' thumbnails.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image
from sqlalchemy import select

from farm.db.models import Frame
from farm.media.preview import render_preview
from farm.media.thumbnails import display_key, ensure_thumbnail, make_thumbnail, thumb_key
from tests.outputs.conftest import wait_job

pytestmark = [pytest.mark.ray, pytest.mark.blender]

MAKE = """
import sys, bpy
out = sys.argv[-1]
bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
render = scene.render
render.engine = "CYCLES"
render.resolution_x = render.resolution_y = 16
render.resolution_percentage = 100
scene.cycles.samples, scene.cycles.use_denoising, scene.cycles.device, scene.cycles.seed = 4, False, "CPU", 3
world = bpy.data.worlds.new("World")
world.use_nodes = True
world.node_tree.nodes["Background"].inputs[0].default_value = (0.2, 0.25, 0.3, 1.0)
scene.world = world
# A bright orange emitter: over 1.0, where view transforms differ most (Standard clips, AgX rolls off).
hero = bpy.data.collections.new("Hero")
scene.collection.children.link(hero)
bpy.ops.mesh.primitive_cube_add(size=2.0)
box = bpy.context.active_object
for c in box.users_collection:
    c.objects.unlink(box)
hero.objects.link(box)
mat = bpy.data.materials.new("hot")
nodes = mat.node_tree.nodes
nodes.clear()
emit = nodes.new("ShaderNodeEmission")
emit.inputs[0].default_value = (1.0, 0.35, 0.05, 1.0)
emit.inputs[1].default_value = 3.0
mat.node_tree.links.new(emit.outputs[0], nodes.new("ShaderNodeOutputMaterial").inputs[0])
box.data.materials.append(mat)
cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
cam.location, cam.rotation_euler = (0.0, -5.0, 0.0), (1.5708, 0.0, 0.0)
scene.collection.objects.link(cam)
scene.camera = cam
# Two view layers: the thumbnail is the first one's Combined pass (the second has no emitter).
scene.view_layers[0].name = "Beauty"
extra = scene.view_layers.new("Extra")
extra.layer_collection.children["Hero"].exclude = True
for layer in scene.view_layers:
    layer.use_pass_z = True
settings = render.image_settings
settings.media_type = "MULTI_LAYER_IMAGE"
settings.file_format = "OPEN_EXR_MULTILAYER"
settings.color_depth = "16"
render.filepath = "//render/shot_####"
scene.frame_start = scene.frame_end = 1
view = scene.view_settings
for name, transform, look, exposure, gamma in (
    ("agx", "AgX", "None", 0.0, 1.0),
    ("standard", "Standard", "None", 0.0, 1.0),
    ("agx_graded", "AgX", "AgX - Punchy", 0.7, 1.3),
):
    view.view_transform, view.look, view.exposure, view.gamma = transform, look, exposure, gamma
    bpy.ops.wm.save_as_mainfile(filepath=f"{out}/{name}.blend", copy=True)
"""

# What an artist gets with Output > PNG: Blender applies the scene's view settings when it writes the file.
LOCAL_PNG = """
import sys, bpy
blend, out = sys.argv[-2], sys.argv[-1]
bpy.ops.wm.open_mainfile(filepath=blend)
scene = bpy.context.scene
for layer in scene.view_layers:
    layer.use = layer.name == "Beauty"
settings = scene.render.image_settings
settings.media_type = "IMAGE"
settings.file_format = "PNG"
settings.color_mode, settings.color_depth = "RGBA", "8"
scene.frame_set(1)
scene.render.filepath = out
bpy.ops.render.render(write_still=True)
"""

NAMES = ("agx", "standard", "agx_graded")


def _run(script: str, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def pixels(jpeg: bytes) -> NDArray[np.int32]:
    with Image.open(io.BytesIO(jpeg)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int32)


@pytest.fixture(scope="module")
def graded(farm, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    """Per scene: the farm's frame (key, sha, the thumbnail it stored) and Blender's own PNG of the frame."""
    from farm.client import FarmClient

    work = tmp_path_factory.mktemp("view-transform")
    _run(MAKE, str(work))
    out: dict[str, dict[str, object]] = {}
    with FarmClient(farm.url, farm.admin_token) as client:
        jobs = {name: client.submit(work / f"{name}.blend", "1", name=name).job.id for name in NAMES}
        for name in NAMES:
            _run(LOCAL_PNG, str(work / f"{name}.blend"), str(work / f"{name}.png"))
        for name, job_id in jobs.items():
            job = wait_job(client, job_id)
            assert job.status.value == "completed", job.status_reason
            with farm.db.session() as s:
                frame = s.scalars(select(Frame).where(Frame.job_id == job_id)).one()
                key, sha = frame.key, frame.sha256
            thumb = thumb_key(key, sha)
            assert farm.store.stat(thumb) is not None, f"{name}: the render node stored no thumbnail"
            assert farm.store.stat(display_key(key, sha)) is not None, f"{name}: no preview image"
            exr = work / f"{name}.exr"
            farm.store.get_file(key, exr)
            out[name] = {
                "key": key,
                "sha": sha,
                "thumb": b"".join(farm.store.open(thumb)),
                "blender": make_thumbnail(work / f"{name}.png"),
                "python": make_thumbnail(exr),  # the tone curve used before (and still for old frames)
            }
    return out


@pytest.mark.parametrize("name", NAMES)
def test_the_thumbnail_of_an_exr_frame_is_what_blender_shows(graded, name):
    got, want = pixels(graded[name]["thumb"]), pixels(graded[name]["blender"])
    assert got.shape == want.shape == (16, 16, 3)
    diff = np.abs(got - want)
    assert diff.mean() < 2.0 and diff.max() < 16, (name, diff.mean(), diff.max())
    r, g, b = got[8, 8]
    # The orange emitter of the first view layer, not the empty "Extra".
    assert r >= g > b and r > b + 40, (name, got[8, 8])


def test_view_transforms_look_and_exposure_change_the_thumbnail(graded):
    agx, standard, graded_ = (pixels(graded[n]["thumb"]) for n in NAMES)
    assert np.abs(agx - standard).mean() > 8, "AgX and Standard thumbnails should differ"
    assert np.abs(agx - graded_).mean() > 8, "a look, exposure and gamma should change the thumbnail"
    # The Python tone curve is not AgX: the stored thumbnail is closer to Blender's PNG than it would be.
    blender, python = pixels(graded["agx"]["blender"]), pixels(graded["agx"]["python"])
    assert np.abs(agx - blender).mean() * 3 < np.abs(python - blender).mean()


def test_the_monitor_serves_the_stored_thumbnail(farm, graded):
    frame = graded["agx"]
    key = ensure_thumbnail(farm.store, str(frame["key"]), str(frame["sha"]))
    assert key == thumb_key(str(frame["key"]), str(frame["sha"]))
    assert b"".join(farm.store.open(key)) == frame["thumb"]  # the render node's, not made again


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_the_preview_uses_the_display_referred_images(farm, graded, tmp_path):
    frame = graded["agx"]
    company = str(frame["key"]).split("/")[1]
    key = render_preview(farm.store, company, "vt-preview", [str(frame["key"])], fps=2, shas=[str(frame["sha"])])
    assert key is not None
    movie = tmp_path / "preview.mp4"
    farm.store.get_file(key, movie)
    first = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(movie), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    shown = np.frombuffer(first, dtype=np.uint8).reshape(16, 16, 3).astype(np.int32)
    blender = pixels(frame["blender"])
    # H.264 4:2:0 blurs colour at 16x16: compare the middle, where the emitter fills the frame.
    assert np.abs(shown[5:11, 5:11] - blender[5:11, 5:11]).mean() < 10
