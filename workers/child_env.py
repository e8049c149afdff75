"""The Blender child's environment (issue 17): an explicit, minimal list, never the worker's own. A .blend is a
studio's untrusted file; whatever runs inside Blender sees no store keys, no database URL, no tokens, no
``FARM_*`` setting and nothing else the worker process happens to hold."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

#: Passed through when set: locating programs and libraries, locale and time zone, and the GPU selection that
#: Ray or the container runtime made for this slot.
KEPT = (
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "LD_LIBRARY_PATH",
    "CUDA_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES",
    "NVIDIA_DRIVER_CAPABILITIES",
    "HIP_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "ONEAPI_DEVICE_SELECTOR",
    "OCIO",
)


#: GPU selection variables emptied for a slot without a GPU. Ray (2.60) leaves them untouched for an actor given no
#: GPU, so on a GPU node the CPU slot's Blender would otherwise see the cards the GPU slots own.
GPU_SELECTORS = ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES")


def child_environment(parent: Mapping[str, str], home: Path, *, has_gpu: bool = True) -> dict[str, str]:
    """What the Blender child gets: the kept variables, a home and temp folder of its own (inside the slot's work
    folder, so Blender's user config and caches are not shared with other slots), and Python told not to read
    user site-packages or environment hooks. ``has_gpu`` False (a CPU slot): no GPU is visible to the child."""
    env = {name: parent[name] for name in KEPT if name in parent}
    if not has_gpu:
        env.update(dict.fromkeys(GPU_SELECTORS, ""))
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    tmp = home / "tmp"
    tmp.mkdir(parents=True, exist_ok=True, mode=0o700)
    env.update(HOME=str(home), TMPDIR=str(tmp), PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1")
    return env
