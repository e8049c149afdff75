"""Output formats and file names of rendered frames (pure: used by the API, the client, the worker and Blender).

A job's frames are named by a *template*: ``--output-pattern`` when given, else the scene's own output path
(``//render/shot_####.exr`` becomes ``render/shot_{frame:04d}{ext}``), else ``frame_{frame:06d}{ext}`` (a scene
whose output path is absolute names a folder of the artist's machine, which means nothing on the farm).
Names are relative POSIX paths inside the job's outputs; ``farm download`` recreates them under its folder.
"""

from __future__ import annotations

import re
import string
from pathlib import PurePosixPath

#: Format override (``--format``) -> (Blender media type, Blender file format, file extension). ``scene`` (the
#: default) keeps what the scene says.
FORMATS: dict[str, tuple[str, str, str]] = {
    "PNG": ("IMAGE", "PNG", ".png"),
    "JPEG": ("IMAGE", "JPEG", ".jpg"),
    "TIFF": ("IMAGE", "TIFF", ".tif"),
    "WEBP": ("IMAGE", "WEBP", ".webp"),
    "EXR": ("IMAGE", "OPEN_EXR", ".exr"),
    "EXR_MULTILAYER": ("MULTI_LAYER_IMAGE", "OPEN_EXR_MULTILAYER", ".exr"),
}
SCENE = "scene"

#: Blender file format -> the extension Blender gives it (the image formats the farm stores and previews).
EXTENSIONS: dict[str, str] = {
    "PNG": ".png",
    "JPEG": ".jpg",
    "TIFF": ".tif",
    "WEBP": ".webp",
    "OPEN_EXR": ".exr",
    "OPEN_EXR_MULTILAYER": ".exr",
    "BMP": ".bmp",
    "TARGA": ".tga",
    "TARGA_RAW": ".tga",
    "HDR": ".hdr",
    "JPEG2000": ".jp2",
    "CINEON": ".cin",
    "DPX": ".dpx",
    "IRIS": ".rgb",
}
_KNOWN_EXT = {e for e in EXTENSIONS.values()} | {".jpeg", ".tiff", ".j2c", ".sgi", ".bw", ".rgba"}

FIELDS = frozenset({"job", "name", "layer", "camera", "frame", "ext"})
DEFAULT_TEMPLATE = "frame_{frame:06d}{ext}"
#: Names the farm keeps for itself next to a job's frames (thumbnails, preview); names starting with '.' (the
#: encoded video's folder, partial downloads) are refused too.
RESERVED_DIRS = frozenset({"thumbs"})
RESERVED_NAMES = frozenset({"preview.mp4"})
MAX_NAME = 200
_HASHES = re.compile(r"#+")
_FRAME_SPEC = re.compile(r"^0?\d{0,2}d?$")  # {frame:04d}, {frame:6}: digits only, so no two frames share a name
_SAFE = re.compile(r"[^A-Za-z0-9._+=@-]+")


class OutputNameError(ValueError):
    """An output pattern or name the farm cannot honour (traversal, collisions, unknown fields)."""


def check_pattern(pattern: str) -> str:
    """Validate an ``--output-pattern``: known ``{fields}``, one ``{frame...}`` (else frames collide), a relative
    path that stays inside the job's outputs. Returns the pattern."""
    fields: list[str] = []
    try:
        for _, field, spec, conversion in string.Formatter().parse(pattern):
            if field is None:
                continue
            if field not in FIELDS or conversion:
                raise OutputNameError(
                    f"output pattern {pattern!r}: unknown field {{{field}}}; use {', '.join(sorted(FIELDS))}"
                )
            if spec and (field != "frame" or not _FRAME_SPEC.match(spec)):
                raise OutputNameError(
                    f"output pattern {pattern!r}: only {{frame}} takes a format, a zero-padded width such as "
                    "{frame:04d}"
                )
            fields.append(field)
    except ValueError as exc:
        if isinstance(exc, OutputNameError):
            raise
        raise OutputNameError(f"output pattern {pattern!r} is not valid: {exc}") from exc
    if "frame" not in fields:
        raise OutputNameError(
            f"output pattern {pattern!r} has no {{frame}}: every frame would get the same name; add {{frame:04d}}"
        )
    try:
        # Sample values: the path's shape (traversal, reserved names) does not depend on them.
        sample = pattern.format(job="j", name="n", layer="l", camera="c", frame=1, ext=".png")
    except (ValueError, IndexError, KeyError) as exc:
        raise OutputNameError(f"output pattern {pattern!r} is not valid: {exc}") from exc
    check_name(sample, what=f"output pattern {pattern!r} gives")
    return pattern


def check_name(name: str, what: str = "output name") -> str:
    """A stored file name: relative, no ``..``/``.``/empty parts, no backslash, not one of the farm's own names."""
    if not name or len(name) > MAX_NAME:
        raise OutputNameError(f"{what} {name!r} must be 1..{MAX_NAME} characters")
    if name.startswith("/") or "\\" in name or "\x00" in name or re.match(r"^[A-Za-z]:", name):
        raise OutputNameError(f"{what} {name!r} must be a relative path inside the job's outputs")
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise OutputNameError(f"{what} {name!r} must not contain '..', '.' or empty parts")
    reserved = [p for p in parts if p in RESERVED_DIRS or p.startswith(".")] + (
        [name] if name in RESERVED_NAMES else []
    )
    if reserved:
        raise OutputNameError(f"{what} {name!r} uses a name the farm keeps for itself ({reserved[0]})")
    return name


def scene_template(filepath: str) -> str:
    """The template of a scene's output path (``render.filepath``), following Blender's rules: ``#`` runs are
    the zero-padded frame, no ``#`` means four digits appended, a known image extension is replaced by the
    format's. Absolute or empty paths give the farm's default."""
    if not filepath.startswith("//"):
        return DEFAULT_TEMPLATE
    rel = filepath[2:].replace("\\", "/")
    while rel.startswith("./"):
        rel = rel[2:]
    head, _, tail = rel.rpartition("/")
    stem = PurePosixPath(tail).stem if PurePosixPath(tail).suffix.lower() in _KNOWN_EXT else tail
    escaped = stem.replace("{", "{{").replace("}", "}}")
    if "#" in escaped:
        escaped = _HASHES.sub(lambda m: f"{{frame:0{len(m.group(0))}d}}", escaped)
    else:
        escaped += "{frame:04d}"
    folder = head.replace("{", "{{").replace("}", "}}")
    template = f"{folder}/{escaped}{{ext}}" if folder else f"{escaped}{{ext}}"
    try:
        return check_pattern(template)
    except OutputNameError:
        return DEFAULT_TEMPLATE  # e.g. '//../shot_' points outside the project: the farm cannot honour it


def layer_template(template: str) -> str:
    """The template for one file per view layer: ``{layer}`` added before the extension unless already there."""
    if "{layer" in template:
        return template
    if template.endswith("{ext}"):
        return template[: -len("{ext}")] + "_{layer}{ext}"
    return template + "_{layer}"


def frame_name(
    template: str, *, frame: int, ext: str, job: str = "", name: str = "", layer: str = "", camera: str = ""
) -> str:
    """The stored name of one frame; fields other than ``frame`` and ``ext`` are made path-safe."""

    def safe(value: str) -> str:
        return _SAFE.sub("_", value).strip("._") or "_"

    out = template.format(job=safe(job), name=safe(name), layer=safe(layer), camera=safe(camera), frame=frame, ext=ext)
    return check_name(out)
