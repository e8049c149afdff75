"""Scenes made with the project's bpy for the output tests, and a local render to compare the farm's with."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

HERE = Path(__file__).parent

LOCAL_RENDER = """
import sys, bpy
blend, frame, out, layer = sys.argv[-4], int(sys.argv[-3]), sys.argv[-2], sys.argv[-1]
bpy.ops.wm.open_mainfile(filepath=blend)
scene = bpy.context.scene
if layer:
    for view_layer in scene.view_layers:
        view_layer.use = view_layer.name == layer
scene.frame_set(frame)
scene.render.filepath = out
bpy.ops.render.render(write_still=True)
"""


@pytest.fixture(scope="session")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder with multilayer.blend, plain_exr.blend, markers.blend and video.blend (see make_scenes.py)."""
    out = tmp_path_factory.mktemp("output-scenes")
    proc = subprocess.run(
        [sys.executable, str(HERE / "make_scenes.py"), str(out)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def local_render(blend: Path, frame: int, out: Path, layer: str = "") -> Path:
    """Render one frame the way an artist would on their own machine: ``render(write_still=True)`` (with ``layer``:
    only that view layer enabled)."""
    proc = subprocess.run(
        [sys.executable, "-c", LOCAL_RENDER, str(blend), str(frame), str(out), layer],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def exr_channels(path: Path) -> dict[tuple[str, str], NDArray[np.float32]]:
    """Every channel of every part: {(part name, channel name): pixels}."""
    import OpenEXR

    with OpenEXR.File(str(path), separate_channels=True) as exr:
        return {
            (part.name() or "", name): np.array(channel.pixels)
            for part in exr.parts
            for name, channel in part.channels.items()
        }


def wait_job(client: object, job_id: str, timeout: float = 180.0) -> object:
    from farm.domain.states import JOB_TERMINAL

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.job(job_id)  # type: ignore[attr-defined]
        if job.status in JOB_TERMINAL:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not end within {timeout}s")
