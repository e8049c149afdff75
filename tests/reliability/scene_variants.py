"""Builds hostile or broken variants of the sample scene with bpy, in a child process (run as a script).

    python tests/reliability/scene_variants.py SAMPLE_BLEND OUT_DIR KIND

KIND: ``poison`` (a compositor File Output node that writes the render over ``//textures/checker.png``, the
scene's own texture: the cross-company poisoning scene), ``nocamera`` (no active camera).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def build(sample: Path, out_dir: Path, kind: str) -> Path:
    """Write the variant to ``out_dir/scene.blend`` with the sample's textures beside it; returns the path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(sample.parent / "textures", out_dir / "textures", dirs_exist_ok=True)
    subprocess.run(
        [sys.executable, __file__, str(sample), str(out_dir), kind], check=True, capture_output=True, timeout=120
    )
    return out_dir / "scene.blend"


def _main(sample: str, out_dir: str, kind: str) -> None:
    import bpy

    bpy.ops.wm.open_mainfile(filepath=sample)
    scene = bpy.context.scene
    if kind == "poison":
        tree = bpy.data.node_groups.new("poison", "CompositorNodeTree")
        scene.compositing_node_group = tree
        layers = tree.nodes.new("CompositorNodeRLayers")
        out = tree.nodes.new("CompositorNodeOutputFile")
        out.directory = "//textures/"
        out.file_name = "check"  # + item "er" = checker.png, the texture's own name
        out.format.media_type = "IMAGE"
        out.format.file_format = "PNG"
        out.file_output_items.new("RGBA", "er")
        tree.links.new(layers.outputs["Image"], out.inputs[0])
        extra = tree.nodes.new("CompositorNodeOutputFile")  # and a new file next to the inputs
        extra.directory = "//textures/"
        extra.file_name = "a"
        extra.format.media_type = "IMAGE"
        extra.format.file_format = "PNG"
        extra.file_output_items.new("RGBA", "Image")
        tree.links.new(layers.outputs["Image"], extra.inputs[0])
    elif kind == "nocamera":
        scene.camera = None
    else:
        raise SystemExit(f"unknown variant {kind!r}")
    bpy.ops.wm.save_as_mainfile(filepath=str(Path(out_dir) / "scene.blend"), copy=True)


if __name__ == "__main__":
    _main(*sys.argv[1:4])
