"""Frame thumbnails: a fixed-width JPEG per stored frame, made once and stored.

Frames in a scene-linear format (OpenEXR, plain or multilayer, and Radiance HDR) get theirs from the render node:
Blender saves a display-referred copy of each with the scene's own view transform, look, exposure and gamma
(``workers.display``), and the worker stores it scaled down as the thumbnail and as the frame's preview image
(``store_display_images``). The monitor serves what is stored first. Frames without one (other formats, whose
files are display-referred already, and frames stored before the render nodes made them) get a thumbnail made on
first request: Pillow reads PNG, JPEG, TIFF, WebP, BMP and Targa; OpenEXR (the Combined pass of the first view
layer) and Radiance HDR are tone-mapped from scene-linear light with ``tone_map``, a Standard-like curve.

A thumbnail lives next to its frame in the object store, ``outputs/<company>/<job>/thumbs/<stem>.<sha>.jpg``; the
frame's hash is part of the name so a frame rendered again (a retried chunk) never shows a stale picture. The
preview image is ``thumbs/<stem>.<sha>.view.jpg``.
"""

from __future__ import annotations

import io
import logging
import tempfile
import threading
from pathlib import Path, PurePosixPath

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from farm.errors import BadRequest, StorageError
from storage.base import ObjectStore, check_key

log = logging.getLogger(__name__)

#: Width of every thumbnail in pixels; the height keeps the frame's aspect ratio.
THUMB_WIDTH = 160
#: Widest frame of the preview movie, and of the display-referred preview image of a frame.
DISPLAY_WIDTH = 1280
#: Suffixes of files that hold scene-linear light (tone-mapped when the render node left no display copy).
LINEAR_SUFFIXES = frozenset({".exr", ".hdr"})
#: JPEG quality: small files, still clear at 160 px.
JPEG_QUALITY = 82
#: Frames above this size are not decoded for a thumbnail (protects the API process from huge uploads).
MAX_SOURCE_BYTES = 512 * 1024**2

_locks_guard = threading.Lock()
_locks: dict[str, threading.Lock] = {}


def thumb_key(frame_key: str, sha256: str) -> str:
    """Where the thumbnail of the frame stored at ``frame_key`` (with hash ``sha256``) is kept."""
    path = PurePosixPath(check_key(frame_key))
    return check_key(f"{path.parent}/thumbs/{path.stem}.{sha256[:16]}.jpg")


def display_key(frame_key: str, sha256: str) -> str:
    """Where the display-referred preview image (at most ``DISPLAY_WIDTH`` wide) of a scene-linear frame is kept."""
    path = PurePosixPath(check_key(frame_key))
    return check_key(f"{path.parent}/thumbs/{path.stem}.{sha256[:16]}.view.jpg")


def tone_map(rgb: NDArray[np.float32]) -> NDArray[np.uint8]:
    """Scene-linear RGB → 8-bit sRGB.

    Extended Reinhard on luminance with the white point at the 99.5th percentile (at least 1.0): a frame that
    stays within [0, 1] looks like Blender's "Standard" view, brighter ones roll off instead of clipping.
    """
    rgb = np.nan_to_num(np.asarray(rgb, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    rgb = np.clip(rgb, 0.0, None)
    lum = 0.2126 * rgb[..., 0] + 0.7152 * rgb[..., 1] + 0.0722 * rgb[..., 2]
    white = max(1.0, float(np.percentile(lum, 99.5))) if lum.size else 1.0
    if white > 1.0:
        mapped = lum * (1.0 + lum / (white * white)) / (1.0 + lum)
        scale = np.where(lum > 0, mapped / np.maximum(lum, 1e-8), 0.0)
        rgb = rgb * scale[..., None]
    rgb = np.clip(rgb, 0.0, 1.0)
    srgb = np.where(rgb <= 0.0031308, rgb * 12.92, 1.055 * np.power(rgb, 1 / 2.4) - 0.055)
    out: NDArray[np.uint8] = np.clip(srgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


def _pick(channels: dict[str, NDArray[np.float32]], name: str) -> NDArray[np.float32] | None:
    """Channel ``R`` of a plain EXR, or of a multilayer one (``<view layer>.<pass>.R``, Blender's naming): the
    Combined pass of the first view layer that has one, else the first layer or pass that has the channel."""
    if name in channels:
        return channels[name]
    for key in channels:  # file order: Blender writes the view layers in the scene's order
        if key.endswith(f".Combined.{name}") or key == f"Combined.{name}":
            return channels[key]
    for key in channels:
        if key.endswith("." + name):
            return channels[key]
    return None


def read_exr(path: Path) -> NDArray[np.float32]:
    """The frame's RGB as float32 (H, W, 3); a single-channel (``Y``) EXR becomes grey."""
    import OpenEXR  # imported here: only EXR frames need it

    try:
        with OpenEXR.File(str(path), separate_channels=True) as exr:
            # Every part: a multilayer EXR from Blender keeps each view layer and pass in a part of its own.
            channels = {
                name: np.asarray(ch.pixels, dtype=np.float32)
                for part in exr.parts
                for name, ch in part.channels.items()
            }
    except Exception as exc:
        raise BadRequest(f"{path.name} is not a readable OpenEXR file: {exc}") from exc
    planes = [_pick(channels, c) for c in ("R", "G", "B")]
    if any(p is None for p in planes):
        grey = _pick(channels, "Y") or _pick(channels, "V")
        if grey is None:
            raise BadRequest(f"{path.name} has no R/G/B or Y channel (has {', '.join(sorted(channels))})")
        planes = [grey, grey, grey]
    return np.stack([p for p in planes if p is not None], axis=-1)


def read_linear(path: Path, width: int | None = None) -> NDArray[np.float32]:
    """Scene-linear RGB (H, W, 3) of an OpenEXR or Radiance HDR file (with ``width``, HDR rows and columns are
    skipped down to about twice that width: environment maps are large)."""
    if path.suffix.lower() == ".hdr":
        from farm.media.radiance import read_hdr

        return read_hdr(path, max_width=width)
    return read_exr(path)


def make_thumbnail(path: Path, width: int = THUMB_WIDTH) -> bytes:
    """JPEG bytes of the image at ``path`` scaled to ``width`` pixels wide (never enlarged)."""
    return encode_jpeg(load_rgb(path, width), width, JPEG_QUALITY)


def load_rgb(path: Path, width: int | None = None) -> Image.Image:
    """The image at ``path`` as 8-bit RGB for showing: scene-linear files tone-mapped, alpha over neutral grey.
    ``width`` is a hint: a large HDR file is read at about twice that width."""
    if path.suffix.lower() in LINEAR_SUFFIXES:
        image = Image.fromarray(tone_map(read_linear(path, width)), "RGB")
    else:
        try:
            with Image.open(path) as opened:
                opened.load()
                image = opened.copy()
        except Exception as exc:
            raise BadRequest(f"{path.name} is not an image Pillow can read: {exc}") from exc
        opaque = image.mode in ("RGBA", "LA") and image.getchannel("A").getextrema()[0] == 255
        if opaque:
            image = image.convert("RGB")  # nothing to show through: skip the composite (render nodes, large frames)
        elif image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            # Frames with alpha are shown over a neutral grey, as an artist's viewer would.
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (96, 96, 96, 255))
            image = Image.alpha_composite(background, rgba)
        if image.mode in ("I;16", "I;16B", "I", "F"):
            array = np.asarray(image, dtype=np.float32)
            image = Image.fromarray((array * (255.0 / max(float(array.max()), 1.0))).astype(np.uint8))
        image = image.convert("RGB")
    return image


def encode_jpeg(image: Image.Image, width: int, quality: int) -> bytes:
    """JPEG bytes of ``image`` scaled to ``width`` pixels wide (never enlarged)."""
    w, h = image.size
    if w > width:
        # reducing_gap: a cheap box reduction first, Lanczos for the last factor (a 1080p frame in a few ms).
        image = image.resize((width, max(1, round(h * width / w))), Image.Resampling.LANCZOS, reducing_gap=3.0)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, optimize=True)
    return buffer.getvalue()


def store_display_images(store: ObjectStore, frame_key: str, sha256: str, display: Path) -> bool:
    """Store the thumbnail and the preview image of a scene-linear frame made from ``display``, Blender's
    display-referred copy of it (``workers.display``). Best effort, on the render node: False (and a log line)
    when the copy is unreadable or the store refuses, and the monitor makes a tone-mapped thumbnail instead."""
    try:
        image = load_rgb(display)
        if image.width > DISPLAY_WIDTH:
            image = image.resize(
                (DISPLAY_WIDTH, max(1, round(image.height * DISPLAY_WIDTH / image.width))),
                Image.Resampling.LANCZOS,
                reducing_gap=3.0,
            )
        view = encode_jpeg(image, DISPLAY_WIDTH, 90)
        thumb = encode_jpeg(image, THUMB_WIDTH, JPEG_QUALITY)
        with tempfile.TemporaryDirectory(prefix="farm-display-") as tmp:
            for key, data in ((display_key(frame_key, sha256), view), (thumb_key(frame_key, sha256), thumb)):
                out = Path(tmp) / "image.jpg"
                out.write_bytes(data)
                store.put_file(key, out)  # the thumbnail last: once it is there, so is the preview image
    except (BadRequest, StorageError, OSError) as exc:
        log.warning("frame %s: its display-referred thumbnail was not stored (%s)", frame_key, exc)
        return False
    return True


def _lock_for(key: str) -> threading.Lock:
    with _locks_guard:
        lock = _locks.get(key)
        if lock is None:
            if len(_locks) > 4096:
                _locks.clear()  # bounded: an evicted lock only costs a possible duplicate thumbnail
            lock = _locks[key] = threading.Lock()
        return lock


def ensure_thumbnail(store: ObjectStore, frame_key: str, sha256: str) -> str:
    """The key of the frame's thumbnail, making and storing it first if it does not exist yet."""
    key = thumb_key(frame_key, sha256)
    if store.stat(key) is not None:
        return key
    with _lock_for(key):
        if store.stat(key) is not None:
            return key
        info = store.stat(frame_key)
        if info is None:
            raise StorageError(f"frame {frame_key} is missing from the object store")
        if info.size > MAX_SOURCE_BYTES:
            raise BadRequest(f"frame {frame_key} is {info.size} bytes, too large for a thumbnail")
        with tempfile.TemporaryDirectory(prefix="farm-thumb-") as tmp:
            local = store.local_path(frame_key)
            source = Path(tmp) / PurePosixPath(frame_key).name
            if local is None or not local.exists():
                store.get_file(frame_key, source)
            else:
                source = local
            data = make_thumbnail(source)
            out = Path(tmp) / "thumb.jpg"
            out.write_bytes(data)
            store.put_file(key, out)
        log.debug("thumbnail %s made (%d bytes)", key, len(data))
    return key
