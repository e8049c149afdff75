"""`--order preview`: a spread of the shot first (first, last, halving the gaps), then the rest; every frame once."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import select

from farm.db.models import Frame, Task, TaskAttempt
from farm.domain.frames import parse_frames
from farm.domain.order import FrameOrder, in_order, preview_order
from tests.pipeline.conftest import Rig


def max_gap(frames: list[int]) -> int:
    ordered = sorted(frames)
    return max(b - a for a, b in itertools.pairwise(ordered))


@pytest.mark.parametrize("spec", ["1", "1-2", "1-3", "1-40", "1-250x5", "1,5,10-20", "1-1000"])
def test_preview_order_is_a_permutation_that_spreads_early(spec):
    frames = parse_frames(spec)
    ordered = preview_order(frames)
    assert sorted(ordered) == sorted(frames) and len(set(ordered)) == len(ordered)
    if len(frames) > 2:
        assert ordered[:2] == [frames[0], frames[-1]]
    # After 2**k + 1 frames every gap is at most 1/2**k of the shot (in frame positions): judged early.
    n = len(frames)
    for k in range(1, 8):
        if 2**k + 1 > n:
            break
        positions = sorted(frames.index(f) for f in ordered[: 2**k + 1])
        assert max_gap(positions) <= -(-(n - 1) // 2**k), (k, positions)
    assert in_order(frames, FrameOrder.SEQUENTIAL) == frames


@pytest.mark.ray
def test_preview_job_renders_the_spread_first_and_every_frame_once(rig: Rig):
    studio = rig.company("order-studio")
    job_id = rig.submit(studio, "spread", "1-40", chunk=2, order="preview")
    rig.wait_for(job_id, {"completed"})
    with rig.db.session() as s:
        attempts = s.execute(
            select(Task.frames, TaskAttempt.started_at)
            .join(Task, Task.id == TaskAttempt.task_id)
            .where(Task.job_id == job_id)
            .order_by(TaskAttempt.started_at, TaskAttempt.id)
        ).all()
        stored = sorted(int(f) for f in s.scalars(select(Frame.frame).where(Frame.job_id == job_id)))
    assert stored == list(range(1, 41))
    first_fifth = [f for frames, _ in attempts[:4] for f in frames]  # 8 of 40 frames: 20 % of the work
    assert {1, 40} <= set(first_fifth)
    assert max_gap(first_fifth) <= 10, first_fifth
    assert rig.job(job_id).settings["order"] == "preview"
