"""Builders shared by the asset tests: solid-colour textures and project .blend files made by bpy in a child."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

import farm.sample

MAKE_PROJECT = Path(farm.sample.__file__).with_name("make_project.py")


def texture(path: Path, rgb: tuple[int, int, int], size: int = 8) -> Path:
    """A solid-colour PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), rgb).save(path)
    return path


def build_blend(out: Path, textures: list[object], **spec: object) -> Path:
    """Run farm/sample/make_project.py in a child Python (bpy stays out of the test process)."""
    body = {"out": str(out), "textures": textures, **spec}
    result = subprocess.run(
        [sys.executable, str(MAKE_PROJECT), json.dumps(body)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and out.exists(), result.stderr[-3000:]
    return out
