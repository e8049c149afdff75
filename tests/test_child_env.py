"""Least privilege on a render node (issue 17): the Blender child runs with an explicit, minimal environment.
Checked on a real Blender process through /proc, not on the dict handed to it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from workers.child_env import child_environment
from workers.renderer import BlenderRenderer

pytestmark = pytest.mark.blender


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def test_the_blender_child_holds_no_store_keys_nor_farm_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("FARM_S3_SECRET_KEY", "store-root-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    monkeypatch.setenv("FARM_DATABASE_URL", "postgresql://farm:pw@db/farm")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    env = child_environment(os.environ, tmp_path / "home")
    renderer = BlenderRenderer(tmp_path, env=env)
    try:
        renderer.warm()
        assert renderer.proc.proc is not None
        seen = _environ(renderer.proc.proc.pid)
    finally:
        renderer.close()
    assert not [name for name in seen if name.startswith(("FARM_", "AWS_", "RAY_"))], sorted(seen)
    assert "store-root-secret" not in "".join(seen.values())
    assert seen["CUDA_VISIBLE_DEVICES"] == "1"  # the slot's GPU choice still reaches Blender
    assert seen["HOME"] == str(tmp_path / "home") and seen["PYTHONNOUSERSITE"] == "1"
    assert Path(seen["TMPDIR"]).is_dir()


SCENE_WITH_SCRIPTS = """
import bpy, sys
marker = sys.argv[-1]
code = f"open({marker!r} + '.' + __name__, 'w').write('ran')\\n"
text = bpy.data.texts.new("autorun.py")
text.write(code)
text.use_module = True  # a registered text block: runs on load when scripts may auto-run
scene = bpy.context.scene
camera = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
scene.collection.objects.link(camera)
scene.camera = camera
driven = bpy.data.objects.new("driven", None)
scene.collection.objects.link(driven)
fcurve = driven.driver_add("location", 0)
fcurve.driver.expression = f"__import__('builtins').open({marker!r} + '.driver', 'w').write('ran') or 0"
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[-2])
"""


def test_scripts_in_a_blend_never_run_on_the_farm(tmp_path):
    import subprocess
    import sys

    from workers.protocol import EV_OPENED, OP_OPEN

    blend, marker = tmp_path / "scripted.blend", tmp_path / "marker"
    made = subprocess.run(
        [sys.executable, "-c", SCENE_WITH_SCRIPTS, str(blend), str(marker)], capture_output=True, timeout=120
    )
    assert made.returncode == 0 and blend.exists(), made.stderr[-2000:]
    renderer = BlenderRenderer(tmp_path, env=child_environment(os.environ, tmp_path / "home"))
    try:
        renderer.warm()
        renderer.proc.send(OP_OPEN, attempt="t:1", path=str(blend), settings={})
        opened = renderer.proc.next_event(60)
        assert opened is not None and opened.kind == EV_OPENED, opened
    finally:
        renderer.close()
    assert not list(tmp_path.glob("marker*")), "a script inside the .blend ran"


def test_a_cpu_slots_child_sees_no_gpu_even_where_ray_left_the_node_s_gpus_visible(tmp_path, monkeypatch):
    # Ray 2.60 leaves CUDA_VISIBLE_DEVICES alone for an actor given no GPU: on a GPU node the CPU slot's process
    # inherits the node's full list. Its Blender must not see the cards the GPU slots own.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "0")
    cpu = child_environment(os.environ, tmp_path / "cpu", has_gpu=False)
    gpu = child_environment(os.environ, tmp_path / "gpu", has_gpu=True)
    assert (cpu["CUDA_VISIBLE_DEVICES"], cpu["HIP_VISIBLE_DEVICES"]) == ("", "")
    assert (gpu["CUDA_VISIBLE_DEVICES"], gpu["HIP_VISIBLE_DEVICES"]) == ("0,1", "0")
