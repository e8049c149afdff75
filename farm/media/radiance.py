"""A small reader of Radiance HDR (``.hdr``, RGBE) images, for thumbnails of HDRIs and HDR frames.

Pillow does not read the format. The file is a text header (``#?RADIANCE``, ``FORMAT=32-bit_rle_rgbe`` or
``…_xyze``, optional ``EXPOSURE=``), a blank line, a resolution line (``-Y H +X W`` in the usual top-down order;
any of the eight orientations), then the scanlines: flat RGBE quadruples, the old run-length scheme (``1 1 1 n``
repeats the previous pixel), or the newer adaptive RLE (each scanline starts ``2 2 hi lo`` and holds its four
components one after another in runs). A pixel is ``(m + 0.5) * 2^(e - 136)`` per component (e = 0: black).

Only every n-th row and column is kept (``max_width``): a thumbnail needs a few hundred pixels, not the 8k of an
environment map, and the decoded floats stay small.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from farm.errors import BadRequest

#: CIE XYZ (Radiance's primaries, equal-energy white) to linear Rec.709 RGB, for ``32-bit_rle_xyze`` files.
_XYZ_TO_RGB = np.array(
    [[2.5651, -1.1665, -0.3986], [-1.0217, 1.9777, 0.0439], [0.0753, -0.2543, 1.1892]], dtype=np.float32
)
_RESOLUTION = re.compile(rb"^([-+])([XY]) (\d+) ([-+])([XY]) (\d+)$")
_MAX_SIDE = 1 << 16


def read_hdr(path: Path, max_width: int | None = None) -> NDArray[np.float32]:
    """Linear RGB of the Radiance file at ``path`` as float32 (H, W, 3), top row first; with ``max_width``, only
    every n-th row and column so that the width stays under ``2 * max_width``. ``BadRequest`` when not readable."""
    data = path.read_bytes()
    try:
        return _decode(data, max_width)
    except (IndexError, ValueError) as exc:
        raise BadRequest(f"{path.name} is not a readable Radiance HDR file: {exc}") from exc


def _decode(data: bytes, max_width: int | None) -> NDArray[np.float32]:
    if not data.startswith((b"#?RADIANCE", b"#?RGBE")):
        raise ValueError("it does not start with #?RADIANCE")
    pos, fmt, exposure = 0, b"32-bit_rle_rgbe", 1.0
    while True:
        end = data.index(b"\n", pos)
        line = data[pos:end].strip()
        pos = end + 1
        if not line:
            break
        if line.startswith(b"FORMAT="):
            fmt = line[7:].strip()
        elif line.startswith(b"EXPOSURE="):
            exposure *= float(line[9:])
    if fmt not in (b"32-bit_rle_rgbe", b"32-bit_rle_xyze"):
        raise ValueError(f"format {fmt.decode(errors='replace')!r} is not RGBE or XYZE")
    end = data.index(b"\n", pos)
    match = _RESOLUTION.match(data[pos:end].strip())
    pos = end + 1
    if match is None or match.group(2) == match.group(5):
        raise ValueError("its resolution line is not like '-Y 512 +X 1024'")
    major, minor = int(match.group(3)), int(match.group(6))  # scanlines, pixels per scanline
    if not (0 < major <= _MAX_SIDE and 0 < minor <= _MAX_SIDE):
        raise ValueError(f"a {minor}x{major} image is out of range")
    step = max(1, minor // (2 * max_width)) if max_width else 1
    kept = _scanlines(data, pos, major, minor, step)[:, ::step]  # (rows kept, columns kept, 4) uint8
    rgb = _to_float(kept)
    if fmt == b"32-bit_rle_xyze":
        rgb = np.clip(rgb @ _XYZ_TO_RGB.T, 0.0, None)
    if exposure > 0 and exposure != 1.0:
        rgb = rgb / np.float32(exposure)  # EXPOSURE says by how much the pixels were multiplied
    return _orient(rgb, match.group(1) + match.group(2), match.group(4) + match.group(5))


def _to_float(rgbe: NDArray[np.uint8]) -> NDArray[np.float32]:
    exponent = rgbe[..., 3].astype(np.int32)
    scale = np.where(exponent > 0, np.ldexp(np.float32(1.0), exponent - 136), 0.0).astype(np.float32)
    out: NDArray[np.float32] = (rgbe[..., :3].astype(np.float32) + 0.5) * scale[..., None]
    return out


def _scanlines(data: bytes, pos: int, count: int, width: int, step: int) -> NDArray[np.uint8]:
    """Every ``step``-th scanline as RGBE bytes (rows, width, 4); every scanline is walked to find the next."""
    rows: list[bytes] = []
    for index in range(count):
        head = data[pos : pos + 4]
        if len(head) < 4:
            raise ValueError(f"it ends at scanline {index} of {count}")
        if 8 <= width < 0x8000 and head[0] == 2 and head[1] == 2 and not head[2] & 0x80:
            if (head[2] << 8 | head[3]) != width:
                raise ValueError(f"scanline {index} says width {head[2] << 8 | head[3]}, not {width}")
            row, pos = _adaptive_rle(data, pos + 4, width)
        else:
            row, pos = _flat(data, pos, width)
        if index % step == 0:
            rows.append(row)
    return np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), width, 4)


def _adaptive_rle(data: bytes, pos: int, width: int) -> tuple[bytes, int]:
    """One scanline of the newer RLE: four runs of components (R…, G…, B…, E…), interleaved into RGBE."""
    planes = []
    for _component in range(4):
        plane = bytearray()
        while len(plane) < width:
            count = data[pos]
            if count > 128:  # a run: count - 128 copies of the next byte
                plane += bytes((data[pos + 1],)) * (count - 128)
                pos += 2
            else:  # a literal of count bytes
                if count == 0:
                    raise ValueError("a run of length 0")
                plane += data[pos + 1 : pos + 1 + count]
                pos += 1 + count
        if len(plane) != width:
            raise ValueError("a run crosses the end of its scanline")
        planes.append(plane)
    row = bytearray(4 * width)
    for component, plane in enumerate(planes):
        row[component::4] = plane
    return bytes(row), pos


def _flat(data: bytes, pos: int, width: int) -> tuple[bytes, int]:
    """One scanline of flat pixels, where ``1 1 1 n`` repeats the previous pixel (n shifted by 8 bits per
    consecutive repeat marker: the old Radiance run-length scheme)."""
    row = bytearray()
    shift = 0
    while len(row) < 4 * width:
        pixel = data[pos : pos + 4]
        if len(pixel) < 4:
            raise ValueError("it ends inside a scanline")
        pos += 4
        if pixel[0] == 1 and pixel[1] == 1 and pixel[2] == 1:
            if not row:
                raise ValueError("a repeat marker before any pixel")
            row += row[-4:] * (pixel[3] << shift)
            shift += 8
        else:
            row += pixel
            shift = 0
    if len(row) != 4 * width:
        raise ValueError("a repeat crosses the end of its scanline")
    return bytes(row), pos


def _orient(rgb: NDArray[np.float32], major: bytes, minor: bytes) -> NDArray[np.float32]:
    """Scanline order to top-down, left-to-right: ``-Y`` rows go down, ``+Y`` up; ``+X`` columns go right;
    an X-major file holds columns, so it is transposed."""
    if major[1:] == b"X":  # scanlines are columns
        rgb = rgb.transpose(1, 0, 2)
        major, minor = minor, major
    if major == b"+Y":
        rgb = rgb[::-1]
    if minor == b"-X":
        rgb = rgb[:, ::-1]
    return np.ascontiguousarray(rgb)
