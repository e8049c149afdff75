"""Frame specs (``1-250``, ``1-250x5``, ``1,5,10-20``) and chunking them into tasks."""

from __future__ import annotations

import re

from farm.errors import BadRequest

#: A job may not name more frames than this; a typo like ``1-1000000000`` must not create a billion tasks.
MAX_FRAMES = 100_000
#: Blender's own frame limits.
MIN_FRAME, MAX_FRAME = -1_048_574, 1_048_574

_PART = re.compile(r"^(-?\d+)(?:-(-?\d+)(?:x(\d+))?)?$")


def parse_frames(spec: str) -> list[int]:
    """Expand a frame spec into a sorted list of distinct frames.

    Parts are separated by commas: a single frame ``5``, a range ``1-250`` or a stepped range ``1-250x5``.
    Errors say what to fix.
    """
    text = spec.strip().replace(" ", "")
    if not text:
        raise BadRequest("frame spec is empty; give frames like '1-250', '1-250x5' or '1,5,10-20'")
    frames: set[int] = set()
    for part in text.split(","):
        if not part:
            raise BadRequest(f"frame spec {spec!r} has an empty part (two commas in a row?)")
        match = _PART.match(part)
        if match is None:
            raise BadRequest(
                f"frame spec part {part!r} is not a number, a range 'A-B' or a stepped range 'A-BxN'"
            )
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        step = int(match.group(3)) if match.group(3) is not None else 1
        for value in (first, last):
            if not MIN_FRAME <= value <= MAX_FRAME:
                raise BadRequest(
                    f"frame {value} in {part!r} is outside Blender's range {MIN_FRAME}..{MAX_FRAME}"
                )
        if last < first:
            raise BadRequest(f"frame range {part!r} is reversed; write {last}-{first}")
        if step < 1:
            raise BadRequest(f"step in {part!r} must be at least 1")
        if (last - first) // step + 1 + len(frames) > MAX_FRAMES:
            raise BadRequest(f"frame spec {spec!r} names more than {MAX_FRAMES} frames; split the job")
        frames.update(range(first, last + 1, step))
    return sorted(frames)


def chunk_frames(frames: list[int], chunk_size: int) -> list[list[int]]:
    """Split frames into consecutive chunks of at most ``chunk_size`` frames (one task each)."""
    if chunk_size < 1:
        raise BadRequest(f"chunk size must be at least 1, got {chunk_size}")
    return [frames[i : i + chunk_size] for i in range(0, len(frames), chunk_size)]


def format_frames(frames: list[int]) -> str:
    """The shortest spec naming exactly ``frames`` (consecutive runs collapsed): ``1-8,10``."""
    if not frames:
        return ""
    parts: list[str] = []
    start = prev = frames[0]
    for frame in frames[1:]:
        if frame == prev + 1:
            prev = frame
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = frame
    parts.append(str(start) if start == prev else f"{start}-{prev}")
    return ",".join(parts)
