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
