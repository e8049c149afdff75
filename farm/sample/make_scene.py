"""Build the farm's small sample scene with bpy and save it as ``DIR/scene.blend``.

Run it in its own process with the venv's Python, never import it into a farm process (importing bpy
costs about 0.45 s and a gigabyte of address space, and bpy state is process-global)::

    python -m farm.sample.make_scene --out DIR [--resolution 64x64] [--samples 4] [--frames 48]
    python farm/sample/make_scene.py --out DIR ...

The script imports nothing from the farm so that both forms work without the package on ``sys.path``.
The scene: a camera, a sun, a ground plane and a cube spinning and moving over frames 1..N, with a material
whose Image Texture reads ``//textures/checker.png`` (a relative, unpacked path, so that dependency tracing
finds a file next to the .blend). Cycles on the CPU, denoising off, PNG output.
"""

from __future__ import annotations

import argparse
import math
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

import bpy

TEXTURE_RELATIVE = "textures/checker.png"
TEXTURE_SIZE = 64
CHECKER_CELL = 8


def parse_resolution(text: str) -> tuple[int, int]:
    """Parse ``WxH`` (e.g. ``64x64``) into a pair of positive ints."""
    try:
        width_text, height_text = text.lower().split("x")
        width, height = int(width_text), int(height_text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"resolution must look like 64x64, got {text!r}") from exc
    if width <= 0 or height <= 0:
        raise argparse.ArgumentTypeError(f"resolution must be positive, got {text!r}")
    return width, height


def checker_png(size: int = TEXTURE_SIZE, cell: int = CHECKER_CELL) -> bytes:
    """Return an RGB checker PNG built with zlib and struct alone (no imaging library needed)."""
    light, dark = b"\xe6\xc8\x3c", b"\x28\x3c\xb4"
    rows = []
    for y in range(size):
        pixels = b"".join(light if ((x // cell) + (y // cell)) % 2 == 0 else dark for x in range(size))
        rows.append(b"\x00" + pixels)  # filter type 0 (None) for every scanline

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )


def _mesh_object(name: str, build: str, size: float) -> Any:
    # bmesh is a module that only exists once bpy has been imported, so it cannot sit with the imports above.
    import bmesh

    mesh = bpy.data.meshes.new(name)
    bm = bmesh.new()
    try:
        # calc_uvs below fills the active UV layer and silently does nothing when there is none.
        bm.loops.layers.uv.new("UVMap")
        if build == "cube":
            bmesh.ops.create_cube(bm, size=size, calc_uvs=True)
        else:
            bmesh.ops.create_grid(bm, x_segments=1, y_segments=1, size=size, calc_uvs=True)
        bm.to_mesh(mesh)
    finally:
        bm.free()
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def _checker_material(texture_abs: Path, blend_dir: Path) -> Any:
    image = bpy.data.images.load(str(texture_abs), check_existing=True)
    # Written relative before saving so the .blend never holds an absolute path to this machine.
    image.filepath = bpy.path.relpath(str(texture_abs), start=str(blend_dir))
    # Materials have a node tree from creation on in bpy 5 (Material.use_nodes is deprecated there).
    material = bpy.data.materials.new("Checker")
    nodes, links = material.node_tree.nodes, material.node_tree.links
    bsdf = next(node for node in nodes if node.type == "BSDF_PRINCIPLED")
    tex = nodes.new("ShaderNodeTexImage")
    tex.image = image
    tex.interpolation = "Closest"
    links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    return material


def build_scene(out_dir: Path, resolution: tuple[int, int], samples: int, frames: int) -> Path:
    """Build the sample scene from factory settings and save it; return the .blend path."""
    from mathutils import Vector  # importable only after bpy

    out_dir.mkdir(parents=True, exist_ok=True)
    texture_abs = out_dir / TEXTURE_RELATIVE
    texture_abs.parent.mkdir(parents=True, exist_ok=True)
    texture_abs.write_bytes(checker_png())

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.name = "Sample"

    world = bpy.data.worlds.new("World")
    world.color = (0.2, 0.22, 0.25)
    scene.world = world

    material = _checker_material(texture_abs, out_dir)

    ground = _mesh_object("Ground", "grid", 4.0)
    ground.data.materials.append(material)

    cube = _mesh_object("Cube", "cube", 1.0)
    cube.data.materials.append(material)
    # Rotation and location both change every frame, so no two frames render alike.
    cube.location = (-1.0, 0.0, 0.5)
    cube.rotation_euler = (0.0, 0.0, 0.0)
    cube.keyframe_insert(data_path="location", frame=1)
    cube.keyframe_insert(data_path="rotation_euler", frame=1)
    cube.location = (1.0, 0.5, 0.9)
    cube.rotation_euler = (math.radians(30.0), math.radians(15.0), math.radians(360.0))
    cube.keyframe_insert(data_path="location", frame=frames)
    cube.keyframe_insert(data_path="rotation_euler", frame=frames)

    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    camera.location = (5.0, -5.0, 4.0)
    camera.rotation_euler = (Vector((0.0, 0.0, 0.3)) - camera.location).to_track_quat("-Z", "Y").to_euler()
    scene.camera = camera

    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", type="SUN"))
    scene.collection.objects.link(sun)
    sun.rotation_euler = (math.radians(40.0), math.radians(10.0), math.radians(30.0))
    sun.data.energy = 3.0

    scene.frame_start, scene.frame_end = 1, frames
    scene.frame_set(1)

    render = scene.render
    render.engine = "CYCLES"
    render.resolution_x, render.resolution_y = resolution
    render.resolution_percentage = 100
    render.film_transparent = False
    render.image_settings.file_format = "PNG"
    render.image_settings.color_mode = "RGB"
    render.filepath = "//frame_######"  # the farm names frames after it: frame_000001.png

    cycles = scene.cycles
    cycles.device = "CPU"
    cycles.samples = samples
    cycles.use_denoising = False
    cycles.use_preview_denoising = False

    blend = out_dir / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), relative_remap=True, compress=True)
    return blend


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, build the scene, print the .blend path on the last stdout line."""
    parser = argparse.ArgumentParser(prog="make_scene", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for scene.blend and textures/")
    parser.add_argument("--resolution", type=parse_resolution, default=(64, 64), help="WxH, default 64x64")
    parser.add_argument("--samples", type=int, default=4, help="Cycles samples per pixel, default 4")
    parser.add_argument("--frames", type=int, default=48, help="last frame (animation is 1..N), default 48")
    args = parser.parse_args(argv)
    if args.samples < 1 or args.frames < 2:
        parser.error("--samples must be >= 1 and --frames >= 2 (frame 1 and the last frame must differ)")
    blend = build_scene(args.out.resolve(), args.resolution, args.samples, args.frames)
    sys.stdout.write(f"SAMPLE_BLEND={blend}\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
