"""Dependencies through the real dispatcher (Ray, worker actors, the sleep renderer): nothing downstream starts
early, frame-matched chunks start as soon as their frames are stored, a canceled upstream holds its chain."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from farm.clock import utc
from farm.db.models import Frame, Task, TaskAttempt
from farm.lifecycle import control
from farm.services import jobs
from tests.pipeline.conftest import Rig

pytestmark = [pytest.mark.ray]


def attempts_of(rig: Rig, job_id: str) -> list[tuple[list[int], float]]:
    """(frames, started) of every attempt of the job."""
    with rig.db.session() as s:
        rows = s.execute(
            select(Task.frames, TaskAttempt.started_at)
            .join(Task, Task.id == TaskAttempt.task_id)
            .where(Task.job_id == job_id)
        ).all()
    return [(list(frames), utc(started).timestamp()) for frames, started in rows]


def stored_at(rig: Rig, job_id: str) -> dict[int, float]:
    with rig.db.session() as s:
        rows = s.execute(select(Frame.frame, Frame.created_at).where(Frame.job_id == job_id)).all()
    return {int(f): utc(at).timestamp() for f, at in rows}


def test_comp_waits_for_render_and_frame_match_starts_early(rig):
    studio = rig.company("pipe-studio")
    render = rig.submit(studio, "render", "1-16", chunk=2)
    comp = rig.submit(studio, "comp", "1-16", chunk=2, after=[render])
    matched = rig.submit(studio, "comp-matched", "1-16", chunk=2, after=[render], frame_match=True, priority=90)
    seen = rig.job(comp).status_reason
    assert seen == f"waiting for job {render} (render)"
    for ident in (render, comp, matched):
        rig.wait_for(ident, {"completed"})
    render_done = utc(rig.job(render).finished_at).timestamp()
    assert min(started for _, started in attempts_of(rig, comp)) >= render_done
    frames = stored_at(rig, render)
    early = attempts_of(rig, matched)
    assert min(started for _, started in early) < render_done  # chunk by chunk, not after the whole render
    for chunk, started in early:
        assert started >= max(frames[f] for f in chunk), (chunk, started, frames)
    assert rig.job(comp).status_reason == ""


def test_canceled_render_holds_comp_until_it_is_retried(rig):
    studio = rig.company("pipe-hold")
    render = rig.submit(studio, "render", "1-60", chunk=2)
    comp = rig.submit(studio, "comp", "1-4", chunk=2, after=[render])
    time.sleep(0.3)
    with rig.db.session() as s:
        control.request_cancel(s, jobs.get_job(s, studio, render, lock=True), rig.clock.now())
    rig.wait_for(render, {"canceled"})
    deadline = time.monotonic() + 5
    while not rig.job(comp).status_reason.startswith("held: ") and time.monotonic() < deadline:
        time.sleep(0.05)
    held = rig.job(comp)
    assert held.status.value == "queued"
    assert held.status_reason.startswith(f"held: job {render} (render) canceled; retry it")
    time.sleep(0.5)
    assert attempts_of(rig, comp) == []  # nothing of the comp ran while the render was canceled
    with rig.db.session() as s:
        control.retry(s, jobs.get_job(s, studio, render, lock=True), rig.clock.now())
    rig.dispatcher.wake.set()
    rig.wait_for(render, {"completed"}, timeout=60)
    rig.wait_for(comp, {"completed"})
    assert min(s for _, s in attempts_of(rig, comp)) >= utc(rig.job(render).finished_at).timestamp()
