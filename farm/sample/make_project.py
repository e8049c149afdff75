"""Build a test or benchmark project .blend whose textures (and optionally a linked library) are external files.

Run in its own process with the venv's Python (bpy is never imported into a farm process)::

    python farm/sample/make_project.py '{"out": "/p/scene.blend", "textures": ["//tex/a.png", "/abs/b.png"]}'

The JSON spec:

* ``out``: the .blend to write.
* ``textures``: image paths exactly as the .blend should store them: ``//rel/path.png`` (relative to the
  .blend) or an absolute path. Files need not exist (a missing texture is a valid test case). An entry
  ``{"path": "//seq/img_0001.png", "sequence": true}`` makes an image sequence.
* ``library``: optional path (stored the same way) of a .blend whose object ``LibPlane`` is linked in.
* ``object_name``: name of the first plane (default ``Plane0``); a library is built with ``LibPlane``.
* ``resolution`` ``[w, h]`` (default 32x32), ``samples`` (default 1), ``compress`` (default true).

Each texture goes on its own plane with an emission shader, under an orthographic camera that frames
them side by side, so a rendered frame shows the textures' colours unchanged (view transform Standard).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import bpy


def _image(path: str, sequence: bool = False) -> Any:
    absolute = bpy.path.abspath(path)
    if os.path.exists(absolute):
        image = bpy.data.images.load(absolute, check_existing=False)
    else:
        image = bpy.data.images.new(Path(path).name, 4, 4)
        image.source = "FILE"
    if sequence:
        image.source = "SEQUENCE"
    # Stored exactly as given: relative ('//...') or absolute, which is what the test wants to exercise.
    image.filepath = path
    return image


def _plane(name: str, texture: str | dict[str, Any], x: float) -> Any:
    import bmesh

    mesh = bpy.data.meshes.new(name)
    bm = bmesh.new()
    try:
        bm.loops.layers.uv.new("UVMap")
        bmesh.ops.create_grid(bm, x_segments=1, y_segments=1, size=0.5, calc_uvs=True)
        bm.to_mesh(mesh)
    finally:
        bm.free()
    material = bpy.data.materials.new(f"{name}-material")
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    out = nodes.new("ShaderNodeOutputMaterial")
    emission = nodes.new("ShaderNodeEmission")
    tex = nodes.new("ShaderNodeTexImage")
    if isinstance(texture, dict):
        tex.image = _image(str(texture["path"]), bool(texture.get("sequence", False)))
    else:
        tex.image = _image(texture)
    tex.interpolation = "Closest"
    links.new(tex.outputs["Color"], emission.inputs["Color"])
    links.new(emission.outputs["Emission"], out.inputs["Surface"])
    mesh.materials.append(material)
    obj = bpy.data.objects.new(name, mesh)
    obj.location = (x, 0.0, 0.0)
    return obj


def build(spec: dict[str, Any]) -> Path:
    """Build the project .blend described by ``spec`` (see the module docstring) and return its path."""
    out = Path(spec["out"]).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    # Relative paths in the spec are relative to the .blend: save once first so '//' means its folder.
    bpy.ops.wm.save_as_mainfile(filepath=str(out), relative_remap=False, compress=False)
    scene = bpy.context.scene
    textures: list[str | dict[str, Any]] = list(spec.get("textures", []))
    first = str(spec.get("object_name", "Plane0"))
    for i, texture in enumerate(textures):
        scene.collection.objects.link(_plane(first if i == 0 else f"Plane{i}", texture, float(i)))
    if spec.get("library"):
        library = str(spec["library"])
        with bpy.data.libraries.load(bpy.path.abspath(library), link=True, relative=library.startswith("//")) as (
            _src,
            dst,
        ):
            dst.objects = ["LibPlane"]
        for obj in dst.objects:
            scene.collection.objects.link(obj)
    count = max(1, len(textures) + (1 if spec.get("library") else 0))
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    camera.data.type = "ORTHO"
    camera.data.ortho_scale = float(count)
    camera.location = ((count - 1) / 2.0, 0.0, 5.0)
    scene.collection.objects.link(camera)
    scene.camera = camera
    width, height = spec.get("resolution", [32, 32])
    scene.render.resolution_x, scene.render.resolution_y = int(width) * count, int(height)
    scene.render.resolution_percentage = 100
    scene.render.engine = "CYCLES"
    scene.render.image_settings.file_format = "PNG"
    scene.view_settings.view_transform = "Standard"
    scene.cycles.device = "CPU"
    scene.cycles.samples = int(spec.get("samples", 1))
    scene.cycles.use_denoising = False
    scene.frame_start, scene.frame_end = 1, 10
    bpy.ops.wm.save_as_mainfile(filepath=str(out), relative_remap=False, compress=bool(spec.get("compress", True)))
    return out


if __name__ == "__main__":
    print(build(json.loads(sys.argv[-1])))
