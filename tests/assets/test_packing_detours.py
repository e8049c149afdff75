"""Relative paths that leave the project folder and come back in (``//../<project>/...``) still resolve on the farm.

The job folder on a render node is not named like the studio's project folder, so such a path must travel as its
in-project path with the .blend rewritten. Proven with real files: the scene and its libraries are made by bpy,
packed, laid out under another folder name from the manifest alone (the originals deleted), and opened by bpy;
and one such texture is rendered on the session's embedded farm (real Ray and Blender) and its colour checked.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from farm.client.packing import OUTSIDE_PROJECT, trace
from tests.assets.helpers import build_blend, texture

GREEN, YELLOW, BLUE, RED = (0, 255, 0), (255, 255, 0), (0, 0, 255), (255, 0, 0)

#: Links one more library and stores every library path exactly as given (Blender would normalise it).
RELINK = r"""
import json, sys
import bpy
spec = json.loads(sys.argv[-1])
bpy.ops.wm.open_mainfile(filepath=spec["blend"])
for path in spec.get("link", []):
    with bpy.data.libraries.load(bpy.path.abspath(path), link=True, relative=True) as (_src, dst):
        dst.objects = ["LibPlane"]
    for obj in dst.objects:
        bpy.context.scene.collection.objects.link(obj)
for lib in bpy.data.libraries:
    for old, new in spec.get("set", {}).items():
        if bpy.path.abspath(lib.filepath) == bpy.path.abspath(old):
            lib.filepath = new
bpy.ops.wm.save_as_mainfile(filepath=spec["blend"], relative_remap=False, compress=True)
"""

#: What Blender finds when it opens the .blend: every image and library as an absolute path, whether it is
#: there, an image's first pixel, and the linked objects that could not be loaded.
INSPECT = r"""
import json, os, sys
import bpy
bpy.ops.wm.open_mainfile(filepath=sys.argv[-1])
images = {}
for img in bpy.data.images:
    path = os.path.normpath(bpy.path.abspath(img.filepath, library=img.library))
    # A sequence loads a frame only for a user that shows one: its files are checked by their paths.
    loads = os.path.exists(path) and img.source == "FILE"
    pixel = [round(v * 255) for v in img.pixels[:3]] if loads else None
    images[img.name] = {"stored": img.filepath, "path": path, "exists": os.path.exists(path), "pixel": pixel}
libraries = {
    lib.name: {"stored": lib.filepath, "path": os.path.normpath(bpy.path.abspath(lib.filepath))}
    for lib in bpy.data.libraries
}
for lib in libraries.values():
    lib["exists"] = os.path.exists(lib["path"])
linked = sorted(o.library.name for o in bpy.data.objects if o.library is not None and not o.is_missing)
missing = sorted(f"{i.name}@{i.library.name if i.library else ''}" for i in bpy.data.objects if i.is_missing)
print("INSPECT " + json.dumps({"images": images, "libraries": libraries, "linked": linked, "missing": missing}))
"""


def _bpy(script: str, arg: str) -> str:
    """Run a bpy script in a child Python (bpy stays out of the test process); its stdout."""
    result = subprocess.run([sys.executable, "-c", script, arg], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def inspect(blend: Path) -> dict[str, dict[str, object]]:
    line = next(line for line in _bpy(INSPECT, str(blend)).splitlines() if line.startswith("INSPECT "))
    found: dict[str, dict[str, object]] = json.loads(line.removeprefix("INSPECT "))
    return found


def stored_paths(blend: Path) -> set[str]:
    """The paths as the .blend stores them (Blender itself normalises a library's path when it reads it)."""
    from blender_asset_tracer import blendfile
    from blender_asset_tracer import trace as bat

    try:
        return {bytes(u.asset_path).decode() for u in bat.deps(blend) if Path(u.block.bfile.filepath) == blend}
    finally:
        blendfile.close_all_cached()


@pytest.fixture()
def studio(tmp_path: Path) -> Path:
    """``studio_proj/scene.blend`` whose references take detours through the folder above the project.

    * ``//../studio_proj/textures/x.png``: back into the project (green);
    * ``//../studio_proj/seq/img_0001.png``: an image sequence, the same way (grey, lighter each frame);
    * ``//../studio_proj/lib/lib.blend``: a library, linked the same way, whose own texture is
      ``//../../studio_proj/lib/libtex.png`` (yellow);
    * ``//../elsewhere/far.png``: really outside (red);
    * ``//../elsewhere/outlib.blend``: a library really outside, whose texture is inside the project:
      ``//../studio_proj/textures/shared.png`` (blue).
    """
    base = tmp_path / "studio"
    proj, elsewhere = base / "studio_proj", base / "elsewhere"
    texture(proj / "textures" / "x.png", GREEN)
    texture(proj / "lib" / "libtex.png", YELLOW)
    texture(proj / "textures" / "shared.png", BLUE)
    texture(elsewhere / "far.png", RED)
    for i in range(1, 4):
        texture(proj / "seq" / f"img_{i:04d}.png", (i * 60,) * 3)
    build_blend(proj / "lib" / "lib.blend", ["//../../studio_proj/lib/libtex.png"], object_name="LibPlane")
    build_blend(elsewhere / "outlib.blend", ["//../studio_proj/textures/shared.png"], object_name="LibPlane")
    scene = build_blend(
        proj / "scene.blend",
        [
            "//../studio_proj/textures/x.png",
            "//../elsewhere/far.png",
            {"path": "//../studio_proj/seq/img_0001.png", "sequence": True},
        ],
        library="//lib/lib.blend",
    )
    spec = {
        "blend": str(scene),
        "link": ["//../elsewhere/outlib.blend"],
        "set": {"//lib/lib.blend": "//../studio_proj/lib/lib.blend"},
    }
    _bpy(RELINK, json.dumps(spec))
    return scene


def test_the_studio_scene_resolves_every_detour_where_it_was_made(studio: Path) -> None:
    # The starting point of the other tests: on the studio's machine every path works, detours included.
    assert stored_paths(studio) == {
        "//../studio_proj/textures/x.png",
        "//../elsewhere/far.png",
        "//../studio_proj/seq/img_0001.png",
        "//../studio_proj/lib/lib.blend",
        "//../elsewhere/outlib.blend",
    }
    seen = inspect(studio)
    assert all(img["exists"] for img in seen["images"].values()), seen["images"]
    assert all(lib["exists"] for lib in seen["libraries"].values()), seen["libraries"]
    assert not seen["missing"] and len(seen["linked"]) == 2


def test_paths_back_into_the_project_are_packed_at_their_project_path(studio: Path) -> None:
    base = studio.parent.parent
    with trace(studio) as pack:
        far = f"{OUTSIDE_PROJECT}/{(base / 'elsewhere' / 'far.png').as_posix().lstrip('/')}"
        outlib = f"{OUTSIDE_PROJECT}/{(base / 'elsewhere' / 'outlib.blend').as_posix().lstrip('/')}"
        assert set(pack.files) == {
            "scene.blend",
            "textures/x.png",
            "textures/shared.png",
            "lib/lib.blend",
            "lib/libtex.png",
            "seq/img_0001.png",
            "seq/img_0002.png",
            "seq/img_0003.png",
            far,
            outlib,
        }
        assert not pack.missing
        # Only what is really outside travels as outside; the detours into the project do not.
        assert sorted(pack.outside) == [base / "elsewhere" / "far.png", base / "elsewhere" / "outlib.blend"]
        # Every .blend that stored a detour is a rewritten copy; outlib.blend is moved, so it is rewritten too.
        assert pack.rewritten == {"scene.blend", "lib/lib.blend", outlib}


def test_the_packed_scene_finds_every_file_in_a_job_folder_named_otherwise(studio: Path, tmp_path: Path) -> None:
    job = tmp_path / "farm" / "jobs" / "job-7f3a"
    with trace(studio) as pack:
        for rel, local in pack.files.items():
            (job / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, job / rel)
        blend = job / pack.blend_rel
    # Nothing of the studio is left: whatever Blender finds now comes from the job folder.
    shutil.rmtree(studio.parent.parent)

    seen = inspect(blend)
    images, libraries = seen["images"], seen["libraries"]
    assert set(images) == {"x.png", "far.png", "libtex.png", "shared.png", "img_0001.png"}
    for name, img in images.items():
        assert img["exists"], f"{name}: {img['stored']} resolves to {img['path']}, which is not there"
        assert Path(str(img["path"])).is_relative_to(job), img
    assert {name: img["pixel"] for name, img in images.items()} == {
        "x.png": list(GREEN),
        "far.png": list(RED),
        "libtex.png": list(YELLOW),
        "shared.png": list(BLUE),
        "img_0001.png": None,
    }
    assert images["x.png"]["path"] == str(job / "textures" / "x.png")
    assert images["libtex.png"]["path"] == str(job / "lib" / "libtex.png")
    assert images["shared.png"]["path"] == str(job / "textures" / "shared.png")
    assert images["img_0001.png"]["path"] == str(job / "seq" / "img_0001.png")
    assert all((job / "seq" / f"img_{i:04d}.png").is_file() for i in range(1, 4))
    assert images["x.png"]["stored"] == "//textures/x.png"
    assert len(libraries) == 2
    for lib in libraries.values():
        assert lib["exists"] and Path(str(lib["path"])).is_relative_to(job), lib
    assert str(job / "lib" / "lib.blend") in {lib["path"] for lib in libraries.values()}
    # Both linked planes loaded from their libraries: none is a placeholder for a library Blender could not find.
    assert not seen["missing"] and len(seen["linked"]) == 2


def test_a_scene_without_detours_is_not_rewritten(tmp_path: Path) -> None:
    proj = tmp_path / "plain"
    texture(proj / "textures" / "a.png", GREEN)
    texture(proj / "lib" / "libtex.png", YELLOW)
    build_blend(proj / "lib" / "lib.blend", ["//libtex.png", "//../textures/a.png"], object_name="LibPlane")
    scene = build_blend(proj / "scene.blend", ["//textures/a.png"], library="//lib/lib.blend")
    with trace(scene) as pack:
        assert set(pack.files) == {"scene.blend", "textures/a.png", "lib/lib.blend", "lib/libtex.png"}
        # `//../textures/a.png` from lib/ climbs to the project folder, not above it: it works as it is.
        assert pack.rewritten == set() and pack.files["scene.blend"] == scene


@pytest.mark.ray
@pytest.mark.blender
def test_a_detour_texture_renders_on_the_farm(client: object, tmp_path: Path) -> None:
    from PIL import Image

    from farm.client import FarmClient
    from tests.assets.test_farm_assets import wait

    assert isinstance(client, FarmClient)
    proj = tmp_path / "studio_proj"
    texture(proj / "textures" / "x.png", GREEN)
    blend = build_blend(proj / "scene.blend", ["//../studio_proj/textures/x.png"])
    job = wait(client, client.submit(blend, "1", name="detour", samples=1).job.id)
    assert job.status.value == "completed", client.logs(job.id)
    client.download(job.id, tmp_path / "out")
    frame = Image.open(tmp_path / "out" / "frame_000001.png").convert("RGB")
    assert frame.getpixel((frame.width // 2, frame.height // 2)) == GREEN, "magenta means the texture was missing"
