"""Bundles (issue 12) through the real scheduler and Ray (``tests.scheduled``): short one-frame chunks travel
several to a call, and every promise a chunk alone has holds for each chunk of a bundle. Attacked: a job canceled
mid-bundle, a worker killed mid-bundle, a chunk that hangs inside a bundle. Results are checked by the stored
bytes, not by status."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import ray

from scheduler.dispatcher import DispatchConfig
from tests.scheduled import Rig, scheduled
from workers.renderer import tiny_png

pytestmark = [pytest.mark.ray]

#: Frames render in 10 ms (bundles of up to 8), 301-400 in 40 ms, frame 505 hangs (no progress, no frame), frames
#: 621-660 fail on every node (as on a bad node).
RENDERER = "sleep:0.01;slow:301-400=0.04;hang:505;fail:621-660"


@pytest.fixture(scope="module")
def rig(farm: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    # A short task timeout, so the hung chunk's lease expires within the test.
    # (Not shorter: a chunk handed to a slot whose actor was just replaced waits for the new actor's start.)
    config = DispatchConfig(interval_s=0.01, task_timeout_s=3.0, kill_grace_s=2.0)
    with scheduled(tmp_path_factory.mktemp("bundles"), "bundles", RENDERER, slots=2, config=config) as running:
        yield running


def _frames_are_right(rig: Rig, job_id: str, frames: range) -> None:
    stored = rig.frames(job_id)
    assert sorted(stored) == list(frames)
    for number, row in stored.items():
        expected = hashlib.sha256(tiny_png(4, 4, number)).hexdigest()
        assert row.sha256 == expected, (number, row.sha256)
        assert hashlib.sha256(b"".join(rig.farm.store.open(row.key))).hexdigest() == expected, number


def _per_call(rig: Rig) -> tuple[float, float]:
    """``farm_dispatch_chunks_per_call`` as /metrics exports it: (calls, chunks) over every company."""
    from prometheus_client.parser import text_string_to_metric_families

    from farm.clock import SystemClock
    from web import metrics

    body = metrics.render(metrics.FarmCollector(rig.farm.db, SystemClock(), None)).decode()
    samples = [s for family in text_string_to_metric_families(body) for s in family.samples]
    count = sum(s.value for s in samples if s.name == "farm_dispatch_chunks_per_call_count")
    total = sum(s.value for s in samples if s.name == "farm_dispatch_chunks_per_call_sum")
    return count, total


def test_short_chunks_travel_in_bundles_and_every_frame_is_the_right_one(rig: Rig) -> None:
    before = Counter(rig.dispatcher.calls)
    scraped = _per_call(rig)
    job_id = rig.submit("bundled", "1-160", chunk=1)
    done = rig.ended(job_id, timeout=60)
    assert done["status"] == "completed" and done["frames_done"] == 160, done
    _frames_are_right(rig, job_id, range(1, 161))
    for task in rig.tasks(job_id):
        attempts = rig.attempts(task["id"])
        assert [a.status for a in attempts] == ["completed"], (task["index"], [a.status for a in attempts])
    calls = Counter(rig.dispatcher.calls) - before
    assert sum(size * count for size, count in calls.items()) == 160
    assert max(calls) > 1 and sum(calls.values()) < 160 / 2, f"short chunks went one per call: {calls}"
    assert max(calls) <= rig.dispatcher.config.bundle_max
    # /metrics counts the same calls and chunks.
    count, total = _per_call(rig)
    assert (count - scraped[0], total - scraped[1]) == (sum(calls.values()), 160)


def test_a_job_canceled_mid_bundle_stops_every_chunk_of_it(rig: Rig) -> None:
    job_id = rig.submit("cancel-bundle", "301-400", chunk=1)
    rig.wait(lambda: len(rig.frames(job_id)) >= 12, what="a dozen frames")
    rig.wait(lambda: any(slot.queued for slot in rig.dispatcher.pool.slots), what="a bundle under way")
    asked = time.monotonic()
    assert rig.http.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 200
    done = rig.ended(job_id, timeout=20)
    assert done["status"] == "canceled", done
    assert time.monotonic() - asked < 5
    for task in rig.tasks(job_id):
        assert task["status"] in ("completed", "canceled"), task
        for attempt in rig.attempts(task["id"]):
            assert attempt.ended_at is not None, (task["index"], attempt.status)
    # What was stored is right, and a frame row exists exactly for the chunks that completed.
    completed = {int(t["frames"]) for t in rig.tasks(job_id) if t["status"] == "completed"}
    stored = rig.frames(job_id)
    assert set(stored) == completed and len(stored) < 100
    for number, row in stored.items():
        assert row.sha256 == hashlib.sha256(tiny_png(4, 4, number)).hexdigest()


def test_a_worker_killed_mid_bundle_loses_no_frame(rig: Rig) -> None:
    job_id = rig.submit("kill-bundle", "1001-1200", chunk=1)
    victim = rig.wait(
        lambda: next((slot for slot in rig.dispatcher.pool.slots if len(slot.queued) > 1), None),
        what="a slot with a bundle under way",
    )
    ray.kill(victim.actor)
    done = rig.ended(job_id, timeout=60)
    assert done["status"] == "completed" and done["frames_done"] == 200, done
    _frames_are_right(rig, job_id, range(1001, 1201))
    died = lost = 0
    for task in rig.tasks(job_id):
        attempts = rig.attempts(task["id"])
        assert attempts[-1].status == "completed", (task["index"], [a.status for a in attempts])
        died += sum(a.status == "failed" and "died" in (a.reason or "") for a in attempts)
        lost += sum(a.status == "lost" for a in attempts)
    assert died <= 1, "only the chunk being rendered when the worker died counts as failed"
    assert lost >= 1, "the rest of its bundle was requeued, counting against nothing"


def test_a_chunk_that_hangs_inside_a_bundle_fails_alone(rig: Rig) -> None:
    job_id = rig.submit("hang-bundle", "481-540", chunk=1, max_attempts=2)
    done = rig.ended(job_id, timeout=60)
    assert done["status"] == "failed", done
    by_frame = {int(t["frames"]): t for t in rig.tasks(job_id)}
    hung = by_frame[505]
    attempts = rig.attempts(hung["id"])
    assert [a.status for a in attempts] == ["failed", "failed"], [(a.status, a.reason) for a in attempts]
    assert all("lease expired" in (a.reason or "") for a in attempts), [a.reason for a in attempts]
    stored = rig.frames(job_id)
    assert sorted(stored) == [f for f in range(481, 541) if f != 505]
    for number, row in stored.items():
        assert row.sha256 == hashlib.sha256(tiny_png(4, 4, number)).hexdigest()
    for frame, task in by_frame.items():
        if frame != 505:
            assert task["status"] == "completed", (frame, task["status"])


def test_a_bad_node_fails_one_chunk_per_bundle_not_the_whole_bundle(rig: Rig) -> None:
    """Frames 601-620 render, 621-660 fail. Once the job is measured short its chunks go in bundles, so a bundle
    reaches the failing frames: the chunk that fails stops the rest of its call (not begun, requeued counting
    nothing). The node is taken out for the job after its third failed chunk (the blocklist), not after a whole
    bundle of failures, and the job fails saying no node is left."""
    job_id = rig.submit("bad-node-bundle", "601-660", chunk=1)
    done = rig.ended(job_id, timeout=60)
    assert done["status"] == "failed", done
    stored = rig.frames(job_id)
    assert sorted(stored) == list(range(601, 621))
    for number, row in stored.items():
        assert row.sha256 == hashlib.sha256(tiny_png(4, 4, number)).hexdigest()
    attempts = [a for t in rig.tasks(job_id) for a in rig.attempts(t["id"])]
    failed = [a for a in attempts if a.status == "failed"]
    stopped = [a for a in attempts if a.reason_code == "bundle_stopped"]
    # The blocklist takes the node out after 3 failed chunks (a chunk retried there counts once); at most one
    # more from the rig's other slot, whose call was under way. A whole bundle failing would be 20 or more.
    failed_chunks = {a.task_id for a in failed}
    assert 3 <= len(failed_chunks) <= 4, sorted((a.task_id, a.number, a.reason_code) for a in failed)
    assert stopped, "no bundle reached the failing frames"
    assert all(a.status == "canceled" for a in stopped), [a.status for a in stopped]


@ray.remote(num_cpus=0)
def _no_render_bundle(*_args: Any) -> None:
    raise AttributeError("'RenderWorker' object has no attribute 'render_bundle'")


class _OlderWorker:
    """An actor handle of a worker running code from before bundles: everything but ``render_bundle`` works."""

    def __init__(self, actor: Any) -> None:
        self._actor = actor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._actor, name)

    @property
    def render_bundle(self) -> Any:
        return _no_render_bundle


def test_a_worker_of_older_code_gets_its_chunks_one_by_one(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    pool = rig.dispatcher.pool
    old = pool.slots[0]
    spawn = pool._spawn
    monkeypatch.setattr(
        pool, "_spawn", lambda name, *a: (_OlderWorker if name == old.name else lambda x: x)(spawn(name, *a))
    )
    monkeypatch.setattr(old, "actor", _OlderWorker(old.actor))
    job_id = rig.submit("older-worker", "2001-2120", chunk=1)
    done = rig.ended(job_id, timeout=60)
    assert done["status"] == "completed" and done["frames_done"] == 120, done
    _frames_are_right(rig, job_id, range(2001, 2121))
    assert not old.bundles
    lost = [a for task in rig.tasks(job_id) for a in rig.attempts(task["id"]) if a.status == "lost"]
    assert 1 <= len(lost) <= rig.dispatcher.config.bundle_max, "one bundle was lost, then no more"
