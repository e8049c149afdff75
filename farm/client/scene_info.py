"""What a .blend says about its own render, read without starting Blender (blender-asset-tracer's reader).

``farm submit scene.blend`` without ``--frames`` renders the scene's range and step; ``--view-layer`` and
``--camera`` are checked against the file here, so a typo is refused before anything is uploaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from blender_asset_tracer import blendfile

#: ``ViewLayer.flag`` bit of "Use for Rendering".
_VIEW_LAYER_RENDER = 1
#: ``Object.type`` of a camera.
_OB_CAMERA = 11
#: ``ImageFormatData.media_type`` values (Blender 5).
MEDIA_TYPES = {0: "IMAGE", 1: "MULTI_LAYER_IMAGE", 2: "VIDEO"}


class SceneUnreadable(ValueError):
    """The file is not a .blend this reader understands."""


@dataclass(frozen=True)
class SceneInfo:
    """The active scene of a .blend, as saved."""

    name: str
    frame_start: int
    frame_end: int
    frame_step: int
    output_path: str
    view_layers: list[str] = field(default_factory=list)  # every view layer, enabled or not
    enabled_layers: list[str] = field(default_factory=list)
    cameras: list[str] = field(default_factory=list)  # camera objects in the file
    media_type: str = "IMAGE"  # IMAGE, MULTI_LAYER_IMAGE or VIDEO
    has_camera: bool = True  # the scene's active camera is set

    @property
    def frames(self) -> str:
        """The scene's range as a frame spec (``1-250`` or ``1-250x2``)."""
        if self.frame_end <= self.frame_start:
            return str(self.frame_start)
        step = f"x{self.frame_step}" if self.frame_step > 1 else ""
        return f"{self.frame_start}-{self.frame_end}{step}"

    def check(self, view_layers: list[str], camera: str | None) -> None:
        """Raise ``ValueError`` naming what exists when a requested view layer or camera is not in the file."""
        unknown = [name for name in view_layers if name not in self.view_layers]
        if unknown:
            raise ValueError(
                f"--view-layer {', '.join(unknown)}: scene {self.name!r} has view layers {', '.join(self.view_layers)}"
            )
        if camera and camera not in self.cameras:
            raise ValueError(f"--camera {camera}: the cameras in this file are {', '.join(self.cameras) or 'none'}")
        if not camera and not self.has_camera:
            hint = f", or pass --camera with one of {', '.join(self.cameras)}" if self.cameras else ""
            raise ValueError(
                f"scene {self.name!r} has no active camera: set one (Scene properties > Camera) and save{hint}"
            )


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def read_scene(path: Path) -> SceneInfo:
    """The scene Blender opens with the file (the one it was saved showing)."""
    try:
        bf = blendfile.BlendFile(Path(path))
    except Exception as exc:
        raise SceneUnreadable(f"cannot read the scene settings of {Path(path).name}: {exc}") from exc
    try:
        scenes = bf.find_blocks_from_code(b"SC")
        globs = bf.find_blocks_from_code(b"GLOB")
        scene = globs[0].get_pointer(b"curscene") if globs else None
        if scene is None:
            if not scenes:
                raise SceneUnreadable(f"{Path(path).name} holds no scene")
            scene = scenes[0]
        layers: list[str] = []
        enabled: list[str] = []
        layer = scene.get_pointer((b"view_layers", b"first"))
        while layer is not None:
            layer_name = _text(layer.get(b"name"))
            layers.append(layer_name)
            if int(layer.get(b"flag")) & _VIEW_LAYER_RENDER:
                enabled.append(layer_name)
            layer = layer.get_pointer(b"next")
        cameras = sorted(
            _text(ob.id_name)[2:] for ob in bf.find_blocks_from_code(b"OB") if int(ob.get(b"type")) == _OB_CAMERA
        )
        return SceneInfo(
            name=_text(scene.id_name)[2:],
            frame_start=int(scene.get((b"r", b"sfra"))),
            frame_end=int(scene.get((b"r", b"efra"))),
            frame_step=max(1, int(scene.get((b"r", b"frame_step")))),
            output_path=_text(scene.get((b"r", b"pic"))),
            view_layers=layers,
            enabled_layers=enabled,
            cameras=cameras,
            media_type=MEDIA_TYPES.get(int(scene.get((b"r", b"im_format", b"media_type"))), "IMAGE"),
            has_camera=scene.get_pointer(b"camera") is not None,
        )
    except SceneUnreadable:
        raise
    except Exception as exc:  # the reader raises many kinds on a file it does not understand
        raise SceneUnreadable(f"cannot read the scene settings of {Path(path).name}: {exc}") from exc
    finally:
        bf.close()
