"""What the control-plane benchmarks share: an embedded farm with the null renderer and one-frame-chunk jobs of a
stand-in scene (``bench/scale.py``, ``bench/latency.py``, ``bench/bundle_sizes.py``).

The ``farm`` modules are imported inside the functions, from whichever tree is first on ``sys.path``:
``bench/latency.py`` runs this in a child process on the code of an older revision.
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path
from typing import Any

STAND_IN = b"BLENDER-v500 null renderer does not read me"


def start(base: Path, slots: int = 8, **settings: Any) -> Any:
    """A started embedded farm keeping its data under ``base``: ``sleep:0`` (tiny PNGs, no Blender)."""
    from farm.settings import ServerSettings

    try:
        module = importlib.import_module("farm.runtime.embedded")
    except ImportError:  # the layout before issue 12
        module = importlib.import_module("farm.embedded")
    config = ServerSettings(
        data_dir=base / "data",
        port=0,
        slots=slots,
        renderer="sleep:0",
        write_cli_config=False,
        storage_sample_interval_s=3600,
        **settings,
    )
    return module.EmbeddedFarm(config).start()


class Jobs:
    """Uploads the stand-in scene once, then builds jobs of one-frame chunks of it."""

    def __init__(self, client: Any, base: Path) -> None:
        from farm.contract import ManifestEntry

        blend = base / "scene.blend"
        blend.write_bytes(STAND_IN)
        digest = hashlib.sha256(STAND_IN).hexdigest()
        client.upload_blob(blend, digest, len(STAND_IN))
        self.manifest = {"scene.blend": ManifestEntry(sha256=digest, size=len(STAND_IN))}

    def spec(self, frames: str, name: str) -> Any:
        from farm.contract import JobCreate

        return JobCreate(
            name=name,
            blend_file="scene.blend",
            manifest=self.manifest,
            frames=frames,
            chunk_size=1,
            preview=False,
            output_format="PNG",  # image files asked for: the control plane, not the video product
        )
