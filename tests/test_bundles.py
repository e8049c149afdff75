"""Bundles (issue 12): the policy (``scheduler.bundles``), the slot's view of a bundle (``scheduler.pool.Slot``) and
the worker's ``render_bundle`` run in-process on a real local store: each chunk of a bundle is rendered and reported
as if it came alone, and one canceled before its turn renders and stores nothing."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import pytest

from farm.domain import reasons
from farm.domain.attempts import Assignment, Outcome
from farm.domain.states import TaskStatus
from farm.lifecycle import outcomes
from scheduler import bundles
from scheduler.pool import Slot
from storage.base import blob_key
from storage.factory import StoreConfig, make_store
from workers.actor import RenderWorker, WorkerConfig
from workers.renderer import tiny_png


def test_a_job_not_yet_measured_or_with_long_chunks_goes_one_chunk_at_a_time() -> None:
    assert bundles.size(None, runnable=1000, idle=8, bundle_s=0.25, bundle_max=8) == 1
    assert bundles.size(2.0, runnable=1000, idle=8, bundle_s=0.25, bundle_max=8) == 1
    assert bundles.size(0.2, runnable=1000, idle=8, bundle_s=0.25, bundle_max=8) == 1


def test_short_chunks_fill_the_time_budget_up_to_the_cap_and_leave_work_for_the_other_slots() -> None:
    assert bundles.size(0.05, runnable=1000, idle=8, bundle_s=0.25, bundle_max=8) == 5
    assert bundles.size(0.001, runnable=1000, idle=8, bundle_s=0.25, bundle_max=8) == 8
    assert bundles.size(0.001, runnable=20, idle=8, bundle_s=0.25, bundle_max=8) == 3  # 20 over 8 slots
    assert bundles.size(0.001, runnable=1, idle=8, bundle_s=0.25, bundle_max=8) == 1
    assert bundles.size(0.001, runnable=1000, idle=8, bundle_s=0.25, bundle_max=1) == 1  # turned off
    assert bundles.size(0.001, runnable=1000, idle=8, bundle_s=0.0, bundle_max=8) == 1


def test_chunk_times_need_two_measures_follow_the_pace_and_forget_old_jobs() -> None:
    times = bundles.ChunkTimes(limit=2)
    times.add("a", 5.0)  # the first chunk also fetched the inputs
    assert times.estimate("a") is None
    times.add("a", 0.01)
    first = times.estimate("a")
    assert first is not None and 0.01 < first < 5.0
    for _ in range(30):
        times.add("a", 0.01)
    assert times.estimate("a") == pytest.approx(0.01, rel=0.01)
    times.add("b", 1.0)
    times.add("c", 1.0)  # over the limit: the oldest job is forgotten
    assert times.estimate("a") is None
    times.forget("c")
    assert times.estimate("c") is None


def test_a_slot_follows_its_worker_through_the_bundle() -> None:
    slot = Slot(name="s", resources={"cpu": 1.0}, actor=None)
    slot.task_id, slot.job_id, slot.attempt = "t1", "j", 1
    slot.call = [("t1", 1), ("t2", 3), ("t3", 1)]
    assert slot.queued == [("t2", 3), ("t3", 1)]
    slot.stopping.add("t3")
    slot.running = True
    assert not slot.advance("t9")  # not a chunk of this call
    assert slot.advance("t2") and (slot.task_id, slot.attempt) == ("t2", 3)
    assert not slot.running and not slot.cancel_sent and slot.queued == [("t3", 1)]
    assert not slot.advance("t1")  # never backwards
    assert slot.advance("t3") and slot.cancel_sent  # it was told to stop before its turn
    slot.release()
    assert slot.call == [] and slot.stopping == set() and slot.queued == []


BLEND = b"BLENDER-v500 bundle input"


@pytest.fixture
def worker(tmp_path: Path) -> tuple[RenderWorker, Path, str]:
    return _worker(tmp_path, "sleep:0.01;slow:1=0.4")


def _worker(tmp_path: Path, renderer: str) -> tuple[RenderWorker, Path, str]:
    store_config = StoreConfig(backend="local", root=str(tmp_path / "store"))
    sha = hashlib.sha256(BLEND).hexdigest()
    source = tmp_path / "scene.blend"
    source.write_bytes(BLEND)
    make_store(store_config).put_file(blob_key("c1", sha), source)
    w = RenderWorker(
        WorkerConfig(
            name="bundle-worker",
            store=store_config,
            cache_dir=str(tmp_path / "cache"),
            cache_bytes=10**8,
            work_dir=str(tmp_path / "work"),
            renderer=renderer,
        )
    )
    return w, tmp_path / "store", sha


def _assignment(sha: str, frame: int) -> Assignment:
    return Assignment(
        job_id="j1",
        task_id=f"t{frame}",
        attempt=1,
        company_id="c1",
        blend_file="scene.blend",
        manifest={"scene.blend": {"sha256": sha, "size": len(BLEND)}},
        frames=[frame],
        settings={},
    )


def test_each_chunk_of_a_bundle_is_reported_alone_and_one_canceled_before_its_turn_renders_nothing(
    worker: tuple[RenderWorker, Path, str],
) -> None:
    w, store_root, sha = worker
    bundle = [_assignment(sha, frame) for frame in (1, 2, 3, 4)]
    out: list[object] = []
    thread = threading.Thread(target=lambda: out.extend(w.render_bundle(bundle)))
    thread.start()
    deadline = time.monotonic() + 10
    while w.poll().task != "t1" and time.monotonic() < deadline:
        time.sleep(0.005)
    assert w.cancel("t3")  # not begun: skipped when its turn comes
    assert not w.cancel("t9")  # not this worker's
    thread.join(timeout=20)
    facts = {f.task_id: f for f in out}  # type: ignore[attr-defined]
    assert [f.task_id for f in out] == ["t1", "t2", "t3", "t4"]  # type: ignore[attr-defined]
    assert facts["t3"].outcome is Outcome.CANCELED and facts["t3"].frames == () and facts["t3"].reason
    for task_id, frame in (("t1", 1), ("t2", 2), ("t4", 4)):
        f = facts[task_id]
        assert f.outcome is Outcome.COMPLETED and f.attempt == 1 and [s.frame for s in f.frames] == [frame]
        data = (store_root / f.frames[0].key).read_bytes()
        assert (
            hashlib.sha256(data).hexdigest() == f.frames[0].sha256 == hashlib.sha256(tiny_png(4, 4, frame)).hexdigest()
        )
    assert list(store_root.rglob("*0004*")), "frames are found by their number"
    assert not list(store_root.rglob("*0003*")), "the skipped chunk stored nothing"


def test_a_cancel_of_the_chunk_being_rendered_stops_only_that_chunk(worker: tuple[RenderWorker, Path, str]) -> None:
    w, _store_root, sha = worker
    out: list[object] = []
    thread = threading.Thread(target=lambda: out.extend(w.render_bundle([_assignment(sha, f) for f in (1, 2)])))
    thread.start()
    deadline = time.monotonic() + 10
    while w.poll().task != "t1" and time.monotonic() < deadline:
        time.sleep(0.005)
    assert w.cancel("t1")
    thread.join(timeout=20)
    first, second = out
    assert first.outcome is Outcome.CANCELED and first.frames == ()  # type: ignore[attr-defined]
    assert second.outcome is Outcome.COMPLETED and len(second.frames) == 1  # type: ignore[attr-defined]
    assert w.poll().task is None


def test_after_a_chunk_fails_the_rest_of_its_bundle_is_not_begun(tmp_path: Path) -> None:
    """A bad node fails one chunk per call, not every chunk of a bundle: the others come back not begun (nothing
    rendered, nothing stored), to be requeued counting against nothing."""
    w, store_root, sha = _worker(tmp_path, "sleep:0.01;fail:2")
    out = w.render_bundle([_assignment(sha, frame) for frame in (1, 2, 3, 4)])
    assert [f.outcome for f in out] == [Outcome.COMPLETED, Outcome.FAILED, Outcome.CANCELED, Outcome.CANCELED]
    for f in out[2:]:
        assert f.frames == () and reasons.coded(f.reason)[0] == "bundle_stopped", f.reason
    assert list(store_root.rglob("*0001*")) and not list(store_root.rglob("*0003*"))
    assert not list(store_root.rglob("*0004*"))
    # The verdict on such a chunk: back to the queue, counting against neither the chunk nor the node.
    verdict = outcomes.decide(out[2].outcome, out[2].fault, out[2].reason, 0, 3, [])
    assert verdict.task is TaskStatus.QUEUED and not verdict.counts_against_chunk and not verdict.counts_against_node
