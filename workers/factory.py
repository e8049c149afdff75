"""Which renderer a worker uses: Blender, or the scripted stand-in for scheduler tests (``workers.faults``).

Kept apart from both so neither imports the other; the worker's configuration (decided by the process that
creates it) names the renderer.
"""

from __future__ import annotations

from pathlib import Path

from workers import faults
from workers.renderer import BlenderRenderer, Renderer


def make_renderer(name: str, work_dir: Path, env: dict[str, str] | None = None) -> Renderer:
    """``blender`` (default); ``sleep:<seconds per frame>`` (tiny PNGs, for scheduler tests); or a fault script
    such as ``sleep:0.05;fail:31-40;hang:61`` (``workers.faults``)."""
    if name == "blender":
        return BlenderRenderer(work_dir, env=env)
    if faults.is_script(name) or name.startswith("sleep:"):
        return faults.FaultyRenderer(faults.FaultScript.parse(name))
    raise ValueError(f"unknown renderer {name!r}; use 'blender', 'sleep:SECONDS' or a fault script")
