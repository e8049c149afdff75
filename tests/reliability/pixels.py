"""Comparing rendered frames by their pixels.

Blender writes the render's timing into every file it saves (PNG text chunks ``RenderTime``, ``Date`` and Cycles'
``cycles.<layer>.total_time``; the same in EXR headers), so two renders of one frame never have equal file bytes.
Their pixels are equal, byte for byte, when the inputs are: that is what these digests compare.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from PIL import Image


def pixel_digest(path: Path | bytes) -> str:
    """sha256 of an image's mode, size and raw pixel bytes (metadata ignored)."""
    import io

    source = io.BytesIO(path) if isinstance(path, bytes) else Path(path)
    with Image.open(source) as image:
        image.load()
        head = f"{image.mode}:{image.size[0]}x{image.size[1]}:".encode()
        return hashlib.sha256(head + image.tobytes()).hexdigest()
