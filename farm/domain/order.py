"""The order a job's frames are rendered in (``--order``): pure.

``preview`` renders a spread first: the first frame, the last, then the middle of each gap, halving the gaps level
by level, so after a few percent of the work the whole shot can be judged; the rest fills in after. Chunks are
consecutive runs of that order, so each chunk still renders in one warm Blender process.
"""

from __future__ import annotations

from collections import deque
from enum import StrEnum


class FrameOrder(StrEnum):
    SEQUENTIAL = "sequential"
    PREVIEW = "preview"


def preview_order(frames: list[int]) -> list[int]:
    """``frames`` (in spec order) reordered: first, last, then halving the gaps breadth first; each frame once."""
    n = len(frames)
    if n <= 2:
        return list(frames)
    picked = [0, n - 1]
    gaps: deque[tuple[int, int]] = deque([(0, n - 1)])
    while gaps:
        lo, hi = gaps.popleft()
        if hi - lo < 2:
            continue
        mid = (lo + hi) // 2
        picked.append(mid)
        gaps.append((lo, mid))
        gaps.append((mid, hi))
    return [frames[i] for i in picked]


def in_order(frames: list[int], order: FrameOrder) -> list[int]:
    """The frames in the order their chunks are made and dispatched."""
    return preview_order(frames) if order is FrameOrder.PREVIEW else list(frames)


#: How many frames ``farm estimate`` renders (first, last, middle).
ESTIMATE_SAMPLES = 3


def sample_frames(frames: list[int], count: int = ESTIMATE_SAMPLES) -> list[int]:
    """The frames an estimate renders: a spread of the shot, in frame order."""
    return sorted(preview_order(frames)[:count])
