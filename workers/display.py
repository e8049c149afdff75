"""The display-referred copy of a frame: what the artist sees in Blender, for thumbnails and the preview.

A scene-linear file (OpenEXR, multilayer or not, and Radiance HDR) holds light, not a picture: how it looks is
the scene's view transform (AgX by default in Blender 5; Filmic, Standard, Khronos PBR Neutral…) with its look,
exposure, gamma, curve and white balance, and the display device. Blender applies all of that when it saves the
render result into a display format, so after each such frame the Blender child saves the render result once more,
as an uncompressed 8-bit TIFF with the scene's colour management (``color_management = 'FOLLOW_SCENE'``). The
worker turns it into the frame's thumbnail and preview image (``farm.media.thumbnails.display_images``).

From a multilayer render the render result shows the Combined pass of the first enabled view layer (the one the
frame's file was rendered with, when the farm writes one file per layer), or the compositor's output when the scene
composites. An uncompressed TIFF is the cheapest display format Blender writes (best of three at 1920x1080 on
two cores: 0.05 s, against 0.12-0.15 s for a PNG even at compression 0; 0.2-0.3 s on busy cores); the first save
of a process also sets up the colour transform (0.3-1 s, once). The worker scales it down.

``save_display_copy`` runs inside the Blender child; the path helpers are shared with the worker.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

#: Output file formats that hold scene-linear light: only their frames need a display-referred copy (the others
#: are display-referred already: Blender applied the view transform when it wrote them).
LINEAR_FORMATS = frozenset({"OPEN_EXR", "OPEN_EXR_MULTILAYER", "HDR"})
#: Folder of the display copies inside a chunk's output folder; a name starting with '.' is never a frame's.
DISPLAY_DIR = ".display"

#: The output settings the copy changes, restored in this order (media type before file format: Blender 5
#: accepts a file format only when the media type allows it).
_SAVED = (
    "media_type",
    "file_format",
    "color_management",
    "color_mode",
    "color_depth",
    "exr_codec",
    "tiff_codec",
    "compression",
    "quality",
)


def display_path(out_dir: str | Path, name: str) -> Path:
    """Where the display copy of the frame file ``name`` (a relative path in the job's outputs) is written."""
    return Path(out_dir) / DISPLAY_DIR / f"{name}.tif"


def save_display_copy(bpy: Any, scene: Any, path: Path) -> bool:
    """Save the render result as an 8-bit RGBA TIFF at ``path`` with the scene's view settings; False (and a line
    on stdout, which goes to the chunk's log) when Blender cannot: a thumbnail is never worth failing a frame."""
    settings = scene.render.image_settings
    saved: dict[str, Any] = {}
    for name in _SAVED:
        try:
            saved[name] = getattr(settings, name)
        except AttributeError:
            continue
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        settings.media_type = "IMAGE"
        settings.file_format = "TIFF"
        settings.color_management = "FOLLOW_SCENE"
        settings.color_mode = "RGBA"
        settings.color_depth = "8"
        settings.tiff_codec = "NONE"
        bpy.data.images["Render Result"].save_render(str(path), scene=scene)
        return os.path.exists(path)
    except Exception as exc:  # a scene whose render result has no picture (e.g. no Combined pass)
        sys.stdout.write(f"farm: no display copy of this frame ({type(exc).__name__}: {exc})\n")
        sys.stdout.flush()
        return False
    finally:
        for name, value in saved.items():
            try:
                setattr(settings, name, value)
            except (TypeError, ValueError, AttributeError):
                continue  # a value the restored format does not take (e.g. an EXR codec on a TIFF): not used
