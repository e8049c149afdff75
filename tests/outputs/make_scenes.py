"""Builds the test scenes with the project's bpy (run as a script: ``python make_scenes.py OUT_DIR``).

- ``multilayer.blend``: Multilayer EXR, view layers "Beauty" and "Extra" with Z and Normal passes, output path
  ``//render/shot_####.exr``, frames 2-5 step 3.
- ``plain_exr.blend``: plain OpenEXR (half float, PIZ) with Z and Normal passes enabled.
- ``markers.blend``: PNG 16-bit RGBA; camera "CamRed" faces a red emitter, "CamBlue" a blue one; markers bind
  CamRed at frame 1 and CamBlue at frame 3.
- ``layers_png.blend``: PNG with view layers "Fore" (an orange emitter) and "Back" (its collection excluded): the
  farm writes one file per layer.
- ``video.blend``: FFmpeg video output (the farm renders lossless PNG frames of it).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import bpy  # type: ignore[import-not-found,unused-ignore]


def base(name: str) -> object:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.name = name
    render = scene.render
    render.engine = "CYCLES"
    render.resolution_x, render.resolution_y, render.resolution_percentage = 32, 24, 100
    scene.cycles.samples = 2
    scene.cycles.use_denoising = False
    scene.cycles.device = "CPU"
    scene.cycles.seed = 7
    world = bpy.data.worlds.new("World")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs[0].default_value = (0.05, 0.05, 0.05, 1.0)
    scene.world = world
    return scene


def emitter(scene: object, name: str, colour: tuple[float, float, float], location: tuple[float, float, float]) -> None:
    bpy.ops.mesh.primitive_cube_add(size=2.0, location=location)
    obj = bpy.context.active_object
    obj.name = name
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    nodes = mat.node_tree.nodes
    nodes.clear()
    emit = nodes.new("ShaderNodeEmission")
    emit.inputs[0].default_value = (*colour, 1.0)
    emit.inputs[1].default_value = 1.0
    out = nodes.new("ShaderNodeOutputMaterial")
    mat.node_tree.links.new(emit.outputs[0], out.inputs[0])
    obj.data.materials.append(mat)


def camera(
    scene: object, name: str, location: tuple[float, float, float], rotation: tuple[float, float, float]
) -> object:
    cam = bpy.data.objects.new(name, bpy.data.cameras.new(name))
    cam.location, cam.rotation_euler = location, rotation
    scene.collection.objects.link(cam)
    return cam


def multilayer(out: Path) -> None:
    scene = base("Shot")
    emitter(scene, "Box", (0.8, 0.3, 0.1), (0.0, 0.0, 0.0))
    scene.camera = camera(scene, "Cam", (0.0, -6.0, 0.0), (math.pi / 2, 0.0, 0.0))
    first = scene.view_layers[0]
    first.name = "Beauty"
    extra = scene.view_layers.new("Extra")
    for layer in (first, extra):
        layer.use_pass_z = True
        layer.use_pass_normal = True
    # Keyframed so each frame differs.
    box = bpy.data.objects["Box"]
    box.location.x = -1.0
    box.keyframe_insert("location", frame=1)
    box.location.x = 1.0
    box.keyframe_insert("location", frame=6)
    im = scene.render.image_settings
    im.media_type = "MULTI_LAYER_IMAGE"
    im.file_format = "OPEN_EXR_MULTILAYER"
    im.color_depth = "16"
    im.exr_codec = "ZIP"
    scene.render.filepath = "//render/shot_####.exr"
    scene.frame_start, scene.frame_end, scene.frame_step = 2, 5, 3
    bpy.ops.wm.save_as_mainfile(filepath=str(out / "multilayer.blend"), compress=True)


def plain_exr(out: Path) -> None:
    scene = base("Plain")
    emitter(scene, "Box", (0.2, 0.7, 0.3), (0.0, 0.0, 0.0))
    scene.camera = camera(scene, "Cam", (0.0, -6.0, 0.0), (math.pi / 2, 0.0, 0.0))
    layer = scene.view_layers[0]
    layer.use_pass_z = True
    layer.use_pass_normal = True
    im = scene.render.image_settings
    im.media_type = "IMAGE"
    im.file_format = "OPEN_EXR"
    im.color_depth = "16"
    im.exr_codec = "PIZ"
    scene.render.filepath = "//plain_"
    scene.frame_start, scene.frame_end = 1, 2
    bpy.ops.wm.save_as_mainfile(filepath=str(out / "plain_exr.blend"), compress=True)


def markers(out: Path) -> None:
    scene = base("Markers")
    emitter(scene, "Red", (1.0, 0.0, 0.0), (0.0, 6.0, 0.0))
    emitter(scene, "Blue", (0.0, 0.0, 1.0), (0.0, -6.0, 0.0))
    red = camera(scene, "CamRed", (0.0, 0.0, 0.0), (math.pi / 2, 0.0, 0.0))  # looks along +Y
    blue = camera(scene, "CamBlue", (0.0, 0.0, 0.0), (math.pi / 2, 0.0, math.pi))  # looks along -Y
    scene.camera = red
    scene.timeline_markers.new("A", frame=1).camera = red
    scene.timeline_markers.new("B", frame=3).camera = blue
    im = scene.render.image_settings
    im.media_type = "IMAGE"
    im.file_format = "PNG"
    im.color_mode = "RGBA"
    im.color_depth = "16"
    scene.render.filepath = "//shots/cam_"
    scene.frame_start, scene.frame_end = 1, 4
    bpy.ops.wm.save_as_mainfile(filepath=str(out / "markers.blend"), compress=True)


def layers_png(out: Path) -> None:
    scene = base("Layers")
    props = bpy.data.collections.new("Props")
    scene.collection.children.link(props)
    emitter(scene, "Box", (0.9, 0.6, 0.1), (0.0, 0.0, 0.0))
    box = bpy.data.objects["Box"]
    for collection in list(box.users_collection):
        collection.objects.unlink(box)
    props.objects.link(box)
    scene.camera = camera(scene, "Cam", (0.0, -6.0, 0.0), (math.pi / 2, 0.0, 0.0))
    fore = scene.view_layers[0]
    fore.name = "Fore"
    back = scene.view_layers.new("Back")
    back.layer_collection.children["Props"].exclude = True  # Back renders the world only
    im = scene.render.image_settings
    im.media_type = "IMAGE"
    im.file_format = "PNG"
    im.color_mode = "RGB"
    scene.render.filepath = "//out/img_####"
    scene.frame_start, scene.frame_end = 1, 2
    bpy.ops.wm.save_as_mainfile(filepath=str(out / "layers_png.blend"), compress=True)


def video(out: Path) -> None:
    scene = base("Video")
    emitter(scene, "Box", (0.9, 0.9, 0.2), (0.0, 0.0, 0.0))
    scene.camera = camera(scene, "Cam", (0.0, -6.0, 0.0), (math.pi / 2, 0.0, 0.0))
    im = scene.render.image_settings
    im.media_type = "VIDEO"
    im.file_format = "FFMPEG"
    scene.render.ffmpeg.format = "MPEG4"
    scene.render.ffmpeg.codec = "H264"
    scene.render.filepath = "//movie/clip_"
    scene.frame_start, scene.frame_end = 1, 2
    bpy.ops.wm.save_as_mainfile(filepath=str(out / "video.blend"), compress=True)


if __name__ == "__main__":
    target = Path(sys.argv[-1])
    target.mkdir(parents=True, exist_ok=True)
    for build in (multilayer, plain_exr, markers, layers_png, video):
        build(target)
