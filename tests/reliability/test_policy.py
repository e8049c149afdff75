"""The scheduler's reliability decisions on a real (SQLite) database, without Ray: retries, the blocklist, the
fail-job policy, slot choice, leases, recovery, pause/resume/retry and the reasons a waiting job shows.

The decisions are the lifecycle's (``farm.lifecycle.attempts``) and the pure policies (``scheduler.placement``,
``scheduler.leases``), called directly; the dispatcher's loop parts get slots with a stand-in actor (the Ray actor
handle is the seam)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from farm.clock import SystemClock
from farm.db.engine import Database
from farm.db.models import Frame, Job, Task, TaskAttempt
from farm.domain.attempts import Fault, Outcome, PollReport, StoredFrame
from farm.domain.states import JobStatus, TaskStatus
from farm.errors import Conflict, NotFound
from farm.lifecycle import attempts, blocklist, control
from farm.lifecycle.transitions import set_task_status
from scheduler import placement
from scheduler.dispatcher import Dispatcher
from scheduler.nodes import NodeTracker, NodeView, slot_layout
from scheduler.pool import Slot, WorkerPool
from tests import factories
from workers.faults import FaultScript, FaultyRenderer
from workers.renderer import ChunkSpec

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


class Remote:
    """Stands in for an actor method: records ``.remote(...)`` calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def remote(self, *args: object) -> str:
        self.calls.append(args)
        return f"ref-{len(self.calls)}"


class FakeActor:
    def __init__(self) -> None:
        self.cancel = Remote()
        self.poll = Remote()


def make_slot(name: str, node: str, gpus: float = 0.0) -> Slot:
    resources = {"gpu": gpus, "cpu": 0.0} if gpus else {"cpu": 1.0}
    return Slot(name=name, resources=resources, actor=FakeActor(), node=node)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Database:
    database = Database(f"sqlite:///{tmp_path_factory.mktemp('policy') / 'farm.db'}")
    database.migrate()
    return database


@pytest.fixture()
def dispatcher(db: Database) -> Dispatcher:
    pool = WorkerPool(lambda name, resources: None)  # type: ignore[arg-type,return-value]
    return Dispatcher(db, pool, SystemClock())


def make_job(db: Database, chunks: int = 1, status: JobStatus = JobStatus.ACTIVE, **settings: object) -> str:
    with db.session() as s:
        return factories.job(
            s,
            "reliability",
            frames=f"1-{chunks}",
            status=status,
            settings={"max_attempts": 3, "on_chunk_failure": "continue", **settings},
            now=NOW,
            name="t",
            blend_file="s.blend",
        ).id


def dispatch(db: Database, task_id: str, node: str) -> None:
    """What ``_assign`` does: the task is handed out and a new attempt begins."""
    with db.session() as s:
        task = s.get(Task, task_id)
        assert task is not None
        set_task_status(task, TaskStatus.DISPATCHED, NOW)
        task.attempts += 1
        s.add(
            TaskAttempt(
                task_id=task.id,
                number=task.attempts,
                node=node,
                worker=f"{node}/cpu",
                status="dispatched",
                started_at=NOW,
            )
        )


def finish(
    db: Database,
    d: Dispatcher,
    task_id: str,
    outcome: str,
    reason: str = "",
    fault: Fault | None = None,
    store_frames: bool = True,
) -> None:
    """What ``_apply_facts`` does with an attempt's facts (a completed attempt stored its frames unless told)."""
    with db.session() as s:
        task = s.get(Task, task_id)
        assert task is not None
        job = s.get(Job, task.job_id)
        assert job is not None
        attempt = s.scalar(
            select(TaskAttempt).where(TaskAttempt.task_id == task_id, TaskAttempt.number == task.attempts)
        )
        assert attempt is not None
        if fault is None:
            fault = Fault.NODE if outcome == "failed" else Fault.NONE
        attempt.status, attempt.reason, attempt.ended_at, attempt.fault = outcome, reason, NOW, fault.value
        if outcome == "completed" and store_frames:
            for frame in task.frames:
                s.merge(
                    Frame(
                        job_id=job.id,
                        frame=frame,
                        task_id=task.id,
                        key=f"k/{frame}",
                        name=f"{frame}.png",
                        size=1,
                        sha256="ab" * 32,
                        created_at=NOW,
                    )
                )
        s.flush()
        attempts.settle_attempt(
            s, job, task, Outcome(outcome), fault, reason, NOW, attempt, d.policy, d.store_waits, time.monotonic()
        )
        from farm.lifecycle.transitions import settle_job

        settle_job(s, job, NOW)


def state(db: Database, job_id: str) -> tuple[Job, list[Task]]:
    with db.session() as s:
        job = s.get(Job, job_id)
        assert job is not None
        tasks = list(s.scalars(select(Task).where(Task.job_id == job_id).order_by(Task.index)))
        s.expunge_all()
        return job, tasks


# ---- retries, blocklist, failure policy -------------------------------------------------------------------
def test_failed_attempts_retry_then_fail_the_chunk_and_the_node_counts_the_chunk_once(db, dispatcher):
    job_id = make_job(db)
    task_id = f"{job_id}-t0"
    for n in range(3):
        dispatch(db, task_id, "n1")
        finish(db, dispatcher, task_id, "failed", f"frame 1: Blender exited with status 134 (try {n})")
        job, [task] = state(db, job_id)
        assert task.failures == n + 1
        assert task.status == ("failed" if n == 2 else "soft-failed")
    assert job.status == "failed"
    assert "1 of 1 chunk(s) failed" in job.status_reason and "status 134 (try 2)" in job.status_reason
    with db.session() as s:
        # Three attempts of ONE chunk: the node failed one chunk, not three (the blocklist counts chunks).
        assert [(e.node, e.failures) for e in blocklist.entries(s, job_id)] == [("n1", 1)]
        assert blocklist.blocked_nodes(s, job_id) == set()


def test_three_failed_chunks_block_the_node(db, dispatcher):
    job_id = make_job(db, chunks=3, max_attempts=1)
    for i in range(3):
        dispatch(db, f"{job_id}-t{i}", "n1")
        finish(db, dispatcher, f"{job_id}-t{i}", "failed", "Blender exited with status -11")
    job, _ = state(db, job_id)
    assert "blocklisted: n1" in job.status_reason
    with db.session() as s:
        assert blocklist.blocked_nodes(s, job_id) == {"n1"}


def test_a_scene_fault_fails_the_chunk_at_once_and_never_counts_against_the_node(db, dispatcher):
    job_id = make_job(db, chunks=4, max_attempts=3)
    for i in range(4):
        dispatch(db, f"{job_id}-t{i}", "n1")
        finish(db, dispatcher, f"{job_id}-t{i}", "failed", "scene 'S' has no active camera", fault=Fault.SCENE)
    job, tasks = state(db, job_id)
    assert [(t.status, t.attempts) for t in tasks] == [("failed", 1)] * 4
    assert job.status == "failed" and "no active camera" in job.status_reason
    with db.session() as s:
        assert blocklist.entries(s, job_id) == []


def test_a_store_outage_requeues_with_growing_backoff_and_counts_against_nothing(db, dispatcher):
    job_id = make_job(db)
    task_id = f"{job_id}-t0"
    waits = []
    for _ in range(3):
        dispatch(db, task_id, "n1")
        finish(db, dispatcher, task_id, "failed", "storage: disk full", fault=Fault.STORAGE)
        count, until, _job = dispatcher.store_waits.waits[task_id]
        waits.append(until - time.monotonic())
    job, [task] = state(db, job_id)
    assert (task.status, task.failures) == ("queued", 0)
    assert waits[0] < waits[1] < waits[2] and waits[0] > 1
    assert "waiting for the object store" in job.status_reason
    with db.session() as s:
        assert blocklist.entries(s, job_id) == []
    # The next success clears the wait.
    dispatch(db, task_id, "n1")
    finish(db, dispatcher, task_id, "completed")
    assert task_id not in dispatcher.store_waits.waits and state(db, job_id)[0].status == "completed"


def test_a_completed_attempt_with_a_frame_missing_fails_and_names_it(db, dispatcher):
    job_id = make_job(db)
    task_id = f"{job_id}-t0"
    dispatch(db, task_id, "n1")
    finish(db, dispatcher, task_id, "completed", store_frames=False)
    job, [task] = state(db, job_id)
    assert (task.status, task.failures) == ("soft-failed", 1)
    with db.session() as s:
        attempt = s.scalar(select(TaskAttempt).where(TaskAttempt.task_id == task_id))
        assert attempt is not None and attempt.status == "failed"
        assert "without storing frame(s) 1" in attempt.reason


def test_frame_rows_never_move_between_chunks_and_foreign_events_are_refused(db, dispatcher):
    job_id = make_job(db, chunks=2)
    with db.session() as s:
        t0, t1 = s.get(Task, f"{job_id}-t0"), s.get(Task, f"{job_id}-t1")
        assert t0 is not None and t1 is not None

        def ev(task: str, attempt: int, frame: int, size: int = 3) -> StoredFrame:
            return StoredFrame(task, attempt, frame, "k", "n", size, "cd" * 32)

        assert attempts.record_frames(s, t0, 1, [ev(t0.id, 1, 1)], NOW) == 1
        s.flush()
        # frame 1 claimed by chunk 1 (not its frame), another attempt, another task: all refused
        assert attempts.record_frames(s, t1, 1, [ev(t1.id, 1, 1)], NOW) == 0
        assert attempts.record_frames(s, t0, 2, [ev(t0.id, 1, 1, size=9)], NOW) == 0
        assert attempts.record_frames(s, t0, 1, [ev(t1.id, 1, 2)], NOW) == 0
    with db.session() as s:
        rows = list(s.scalars(select(Frame).where(Frame.job_id == job_id)))
        assert [(r.frame, r.task_id, r.size) for r in rows] == [(1, f"{job_id}-t0", 3)]


def test_stopped_or_lost_attempts_count_against_nothing(db, dispatcher):
    job_id = make_job(db)
    task_id = f"{job_id}-t0"
    for outcome in ("canceled", "lost", "canceled", "lost"):
        dispatch(db, task_id, "n1")
        finish(db, dispatcher, task_id, outcome)
    job, [task] = state(db, job_id)
    assert (task.status, task.failures, task.attempts) == ("queued", 0, 4)
    with db.session() as s:
        assert blocklist.entries(s, job_id) == []


def test_fail_job_policy_fails_the_job_at_once_and_cancels_the_rest(db, dispatcher):
    job_id = make_job(db, chunks=3, max_attempts=1, on_chunk_failure="fail-job")
    dispatch(db, f"{job_id}-t0", "n1")
    dispatch(db, f"{job_id}-t1", "n2")
    finish(db, dispatcher, f"{job_id}-t0", "failed", "frame 1: boom")
    job, tasks = state(db, job_id)
    assert job.status == "failed" and "chunk 0 (frames 1) failed 1 time(s): frame 1: boom" in job.status_reason
    assert [t.status for t in tasks] == ["failed", "dispatched", "canceled"]
    # The chunk still running is stopped by the scheduler; whatever it reports, it does not revive the job.
    finish(db, dispatcher, f"{job_id}-t1", "canceled")
    job, tasks = state(db, job_id)
    assert job.status == "failed" and tasks[1].status == "canceled"


def test_continue_policy_renders_the_rest_then_fails_with_the_reason(db, dispatcher):
    job_id = make_job(db, chunks=2, max_attempts=1)
    dispatch(db, f"{job_id}-t0", "n1")
    finish(db, dispatcher, f"{job_id}-t0", "failed", "frame 1: boom")
    job, _ = state(db, job_id)
    assert job.status == "active"
    dispatch(db, f"{job_id}-t1", "n1")
    finish(db, dispatcher, f"{job_id}-t1", "completed")
    job, tasks = state(db, job_id)
    assert [t.status for t in tasks] == ["failed", "completed"]
    assert job.status == "failed" and "frame 1: boom" in job.status_reason


# ---- slot choice ------------------------------------------------------------------------------------------
def pick(idle, ready, job, blocked=frozenset(), failed_on=frozenset()):
    needs = placement.Needs(bool(job.settings.get("gpu")), bool(job.settings.get("allow_cpu_fallback")))
    return placement.pick_slot(idle, ready, needs, set(blocked), set(failed_on))


def test_gpu_jobs_take_gpu_slots_and_cpu_jobs_never_do(db, dispatcher):
    gpu, cpu = make_slot("a/gpu-0", "a", gpus=1), make_slot("a/cpu", "a")
    dispatcher.pool.slots = [gpu, cpu]
    with db.session() as s:
        gpu_job = s.get(Job, make_job(db, gpu=True, allow_cpu_fallback=False))
        cpu_job = s.get(Job, make_job(db))
        assert pick([cpu, gpu], [gpu, cpu], gpu_job) is gpu
        assert pick([gpu, cpu], [gpu, cpu], cpu_job) is cpu
        assert pick([cpu], [gpu, cpu], gpu_job) is None  # waits for the GPU
        assert pick([gpu], [gpu, cpu], cpu_job) is None
        fallback = s.get(Job, make_job(db, gpu=True, allow_cpu_fallback=True))
        assert pick([cpu], [cpu], fallback) is cpu  # no GPU slot left in the farm
        assert pick([cpu], [cpu], gpu_job) is None  # not allowed to fall back


def test_blocked_nodes_get_no_chunks_and_retries_go_elsewhere(db, dispatcher):
    a, b = make_slot("a/cpu", "a"), make_slot("b/cpu", "b")
    dispatcher.pool.slots = [a, b]
    job_id = make_job(db, chunks=2)
    dispatch(db, f"{job_id}-t0", "a")
    finish(db, dispatcher, f"{job_id}-t0", "failed", "boom")
    with db.session() as s:
        job = s.get(Job, job_id)
        retried, fresh = s.get(Task, f"{job_id}-t0"), s.get(Task, f"{job_id}-t1")
        failed_on = Dispatcher._failed_on(s, retried)
        assert failed_on == {"a"} and Dispatcher._failed_on(s, fresh) == set()
        assert pick([a, b], [a, b], job, failed_on=failed_on) is b
        assert pick([a], [a, b], job, failed_on=failed_on) is None  # b is busy, but it will free up
        assert pick([a], [a, b], job) is a
        for _ in range(3):
            blocklist.record_failure(s, job_id, "a", "boom", NOW)
        assert pick([a, b], [a, b], job, blocked=blocklist.blocked_nodes(s, job_id)) is b
        assert pick([a], [a, b], job, blocked=blocklist.blocked_nodes(s, job_id)) is None
        control.unblock(s, job, "a", NOW)
        assert pick([a], [a, b], job, blocked=blocklist.blocked_nodes(s, job_id)) is a


def test_a_job_no_slot_can_take_says_why(db, dispatcher):
    cpu = make_slot("a/cpu", "a")
    dispatcher.pool.slots = [cpu]
    gpu_only = make_job(db, status=JobStatus.QUEUED, gpu=True, allow_cpu_fallback=False)
    blocked = make_job(db, status=JobStatus.QUEUED)
    with db.session() as s:
        for _ in range(3):
            blocklist.record_failure(s, blocked, "a", "boom", NOW)
    dispatcher._explained_at = float("-inf")
    dispatcher._explain_waiting()
    assert state(db, gpu_only)[0].status_reason == (
        "waiting: no GPU slot is up and this job does not allow CPU fallback"
    )
    # No node may take it any more: it does not sit "rendering" forever, it fails and says what to do.
    job, [task] = state(db, blocked)
    assert (job.status, task.status) == ("failed", "failed")
    assert job.status_reason.startswith("no node may render this job any more: every node that could render it")
    assert f"farm unblock {blocked}" in job.status_reason
    # Unblocking a node runs it again.
    with db.session() as s:
        row = s.get(Job, blocked)
        assert row is not None
        assert control.unblock(s, row, None, NOW) == ["a"]
    job, [task] = state(db, blocked)
    assert (job.status, task.status, task.failures) == ("queued", "queued", 0)
    dispatcher._explained_at = float("-inf")
    dispatcher._explain_waiting()
    assert state(db, blocked)[0].status == "queued"


# ---- leases, requests, recovery -----------------------------------------------------------------------------
def test_an_expired_lease_kills_the_attempt_once(db, dispatcher):
    slot = make_slot("a/cpu", "a")
    dispatcher.pool.slots = [slot]
    dispatcher.configure(task_timeout_s=0.5)
    slot.task_id, slot.job_id, slot.attempt = "t", "j", 1
    assert not dispatcher._check_leases()  # the lease starts now
    with db.session() as s:
        dispatcher._apply_poll(s, slot, PollReport("t", 1, (), 0.5, time.time(), 0.0), time.monotonic())
    assert not dispatcher._check_leases()
    slot.lease_renewed = time.monotonic() - 1.0  # no progress reported for a second
    assert dispatcher._check_leases()
    assert slot.kill_reason.startswith("lease expired: no frame or progress for 0.5s")
    assert slot.actor.cancel.calls == [("t",)]
    assert not dispatcher._check_leases()  # the kill is sent once
    assert slot.actor.cancel.calls == [("t",)]


def test_pause_now_stops_running_chunks_and_a_plain_pause_does_not(db, dispatcher):
    soft, hard = make_job(db, chunks=2), make_job(db, chunks=2)
    slots = []
    for job_id, now in ((soft, False), (hard, True)):
        dispatch(db, f"{job_id}-t0", "a")
        slot = make_slot(f"a/{job_id}", "a")
        slot.task_id, slot.job_id = f"{job_id}-t0", job_id
        slots.append(slot)
        with db.session() as s:
            job = s.get(Job, job_id)
            control.request_pause(s, job, NOW, stop_running=now)
            assert job.status == "pause-requested"
    dispatcher.pool.slots = slots
    with db.session() as s:
        dispatcher._carry_out_requests(s)
    assert slots[0].actor.cancel.calls == [] and slots[1].actor.cancel.calls == [(f"{hard}-t0",)]
    finish(db, dispatcher, f"{hard}-t0", "canceled")
    job, tasks = state(db, hard)
    assert job.status == "paused" and [t.status for t in tasks] == ["paused", "paused"]
    with db.session() as s:
        control.resume(s, s.get(Job, hard), NOW)
    job, tasks = state(db, hard)
    assert job.status == "queued" and [t.status for t in tasks] == ["queued", "queued"]


def test_a_pause_recorded_after_the_last_running_chunk_settled_is_still_carried_out(db, dispatcher):
    # The race: the API saw a chunk in flight (so it left settling to the scheduler), but the scheduler had
    # already settled that chunk's end while the job was still active.
    job_id = make_job(db, chunks=2)
    dispatch(db, f"{job_id}-t0", "a")
    finish(db, dispatcher, f"{job_id}-t0", "completed")
    with db.session() as s:
        job = s.get(Job, job_id)
        job.status = JobStatus.PAUSE_REQUESTED.value  # what request_pause wrote, having seen t0 in flight
    dispatcher.pool.slots = []
    with db.session() as s:
        dispatcher._carry_out_requests(s)
    job, tasks = state(db, job_id)
    assert job.status == "paused" and [t.status for t in tasks] == ["completed", "paused"]


@pytest.mark.parametrize("last", ["completed", "failed"])
def test_a_pause_whose_last_chunks_were_all_in_flight_ends_as_they_end(db, dispatcher, last):
    # A bundle can hold every chunk a job has left: once they end there is nothing to pause, so the job is not
    # "paused" with every chunk completed (nor with a failed one and nothing to resume) but completed or failed.
    job_id = make_job(db, chunks=2, max_attempts=1)
    for i in range(2):
        dispatch(db, f"{job_id}-t{i}", "a")
    with db.session() as s:
        control.request_pause(s, s.get(Job, job_id), NOW)
    assert state(db, job_id)[0].status == "pause-requested"
    finish(db, dispatcher, f"{job_id}-t0", "completed")
    assert state(db, job_id)[0].status == "pause-requested"  # one still renders
    finish(db, dispatcher, f"{job_id}-t1", last, "boom" if last == "failed" else "")
    job, tasks = state(db, job_id)
    assert (job.status, [t.status for t in tasks]) == (last, ["completed", last])


def test_pause_and_resume_of_a_job_with_nothing_running(db):
    job_id = make_job(db, chunks=2, status=JobStatus.QUEUED)
    with db.session() as s:
        control.request_pause(s, s.get(Job, job_id), NOW)
    assert state(db, job_id)[0].status == "paused"
    with db.session() as s:
        with pytest.raises(Conflict, match="only queued or active jobs can be paused"):
            job = s.get(Job, job_id)
            job.status = "completed"
            control.request_pause(s, job, NOW)


def test_retry_requeues_failed_chunks_with_fresh_attempts(db, dispatcher):
    job_id = make_job(db, chunks=2, max_attempts=1)
    for i in range(2):
        dispatch(db, f"{job_id}-t{i}", "a")
    finish(db, dispatcher, f"{job_id}-t0", "failed", "boom")
    finish(db, dispatcher, f"{job_id}-t1", "completed")
    assert state(db, job_id)[0].status == "failed"
    with db.session() as s:
        assert control.retry(s, s.get(Job, job_id), NOW) == 1
    job, tasks = state(db, job_id)
    assert job.status == "queued" and [(t.status, t.failures) for t in tasks] == [("queued", 0), ("completed", 0)]
    with db.session() as s, pytest.raises(Conflict, match="no failed or canceled chunks"):
        control.retry(s, s.get(Job, make_job(db)), NOW)


def test_unblock_of_an_unknown_node_says_how_to_find_the_names(db):
    job_id = make_job(db)
    with db.session() as s, pytest.raises(NotFound, match="has no failed chunks"):
        control.unblock(s, s.get(Job, job_id), "nowhere", NOW)


def test_recover_requeues_in_flight_chunks_and_drops_those_of_finished_jobs(db, dispatcher):
    live, dead = make_job(db), make_job(db)
    dispatch(db, f"{live}-t0", "a")
    dispatch(db, f"{dead}-t0", "a")
    with db.session() as s:
        s.get(Job, dead).status = JobStatus.FAILED.value
    assert dispatcher.recover() >= 2
    assert state(db, live)[1][0].status == "queued"
    assert state(db, dead)[1][0].status == "canceled"
    with db.session() as s:
        attempt = s.scalar(select(TaskAttempt).where(TaskAttempt.task_id == f"{live}-t0"))
        assert attempt.status == "lost" and "scheduler restarted" in attempt.reason


# ---- nodes ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cpus", "gpus", "expected"),
    [
        (1, 0, [("cpu", {"cpu": 1.0})]),
        (1, 1, [("gpu-0", {"gpu": 1.0, "cpu": 0.0}), ("cpu", {"cpu": 1.0})]),
        (16, 2, [("gpu-0", {"gpu": 1.0, "cpu": 1.0}), ("gpu-1", {"gpu": 1.0, "cpu": 1.0}), ("cpu", {"cpu": 14.0})]),
        (0, 0, []),
    ],
)
def test_slot_layout(cpus, gpus, expected):
    assert slot_layout(cpus, gpus) == expected


class FakePool:
    def __init__(self) -> None:
        self.slots: list[Slot] = []
        self.node_alive = lambda _node_id: True

    def add_slot(self, name: str, resources: dict[str, float], node: str = "", node_id: str = "") -> Slot:
        slot = Slot(name=name, resources=resources, actor=FakeActor(), node=node, node_id=node_id)
        self.slots.append(slot)
        return slot


def ray_node(node_id: str, host: str, cpus: int, gpus: int = 0, alive: bool = True, port: int = 1) -> dict:
    resources = {"CPU": float(cpus), **({"GPU": float(gpus)} if gpus else {})}
    return {
        "NodeID": node_id,
        "Alive": alive,
        "NodeManagerHostname": host,
        "NodeManagerPort": port,
        "Resources": resources,
    }


def test_node_tracker_follows_joins_and_leaves():
    nodes = [ray_node("n1", "head", 2)]
    pool = FakePool()
    tracker = NodeTracker(pool, NodeView(lambda: nodes), interval_s=0)  # type: ignore[arg-type]
    assert tracker.sync() == []
    assert [(s.name, s.resources) for s in pool.slots] == [("head/cpu", {"cpu": 2.0})]
    nodes.append(ray_node("n2", "box", 1, gpus=1, port=7001))
    nodes.append(ray_node("n3", "box", 1, port=7002))  # same host name: told apart by port
    tracker.sync()
    assert [s.name for s in pool.slots] == ["head/cpu", "box/gpu-0", "box/cpu", "box:7002/cpu"]
    assert pool.node_alive("n2")
    nodes[1] = ray_node("n2", "box", 1, gpus=1, alive=False)
    gone = tracker.sync()
    assert [s.name for s in gone] == ["box/gpu-0", "box/cpu"]
    assert not tracker.alive("n2") and tracker.alive("n3")


# ---- the fault-script renderer -----------------------------------------------------------------------------
def test_fault_script_parses_and_refuses_unknown_directives():
    script = FaultScript.parse("sleep:0.01;slow:5-6=0.2;fail:3@bad-host;fail:9;hang:7")
    assert script.seconds(5) == 0.2 and script.seconds(1) == 0.01
    assert script.fails(3, "bad-host") and not script.fails(3, "good-host") and script.fails(9, "any")
    assert script.hang == frozenset({7})
    with pytest.raises(ValueError, match="unknown renderer directive"):
        FaultScript.parse("explode:1")


def test_faulty_renderer_crashes_with_a_reason_and_hangs_until_killed(tmp_path: Path):
    renderer = FaultyRenderer(FaultScript.parse("sleep:0.01;fail:2;hang:5"), host="h")
    spec = ChunkSpec("j", tmp_path / "s.blend", [1, 2, 3], tmp_path / "out", {})
    done: list[int] = []
    result = renderer.render(spec, lambda f: done.append(f.frame), lambda _p: None, lambda: False)
    assert (result.outcome, result.exit_code, result.fault, done) == ("failed", 134, "node", [1])
    assert "frame 2" in result.reason and "Segmentation fault" in result.log_tail
    stop_at = time.monotonic() + 0.3
    hung = ChunkSpec("j", tmp_path / "s.blend", [5], tmp_path / "out", {})
    result = renderer.render(hung, lambda f: None, lambda _p: None, lambda: time.monotonic() > stop_at)
    assert result.outcome == "canceled"


class ReplacingPool(FakePool):
    def __init__(self) -> None:
        super().__init__()
        self.replaced: list[str] = []

    def replace(self, slot: Slot) -> bool:
        self.replaced.append(slot.name)
        slot.release()
        return True


def test_a_worker_that_dies_under_a_chunk_fails_the_attempt_but_a_lost_node_does_not(db, dispatcher):
    pool = ReplacingPool()
    dispatcher.pool = pool  # type: ignore[assignment]
    job_id = make_job(db, chunks=2)
    for i, died in ((0, True), (1, False)):
        dispatch(db, f"{job_id}-t{i}", "a")
        slot = make_slot("a/cpu", "a")
        slot.task_id, slot.job_id, slot.attempt = f"{job_id}-t{i}", job_id, 1
        pool.slots = [slot]
        dispatcher._lose(slot, "ActorDiedError: boom" if died else "ActorUnavailableError", died=died)
    job, tasks = state(db, job_id)
    assert [(t.status, t.failures) for t in tasks] == [("soft-failed", 1), ("queued", 0)]
    assert pool.replaced == ["a/cpu", "a/cpu"]
    with db.session() as s:
        reasons = [a.reason for a in s.scalars(select(TaskAttempt).join(Task).where(Task.job_id == job_id))]
    assert any("worker process died" in r for r in reasons) and any(r.startswith("worker lost") for r in reasons)


def test_a_worker_whose_node_left_is_requeued_as_the_node_view_says(db):
    """The dispatcher asks the shared node view (fresh) whether a dead actor's node left: the attempt then counts
    against nothing, even when the actor died, and the reason names the node as the view names it."""
    nodes = [ray_node("n1", "box", 1, port=7001), ray_node("n2", "box", 1, port=7002)]
    pool = ReplacingPool()
    tracker = NodeTracker(pool, NodeView(lambda: [dict(n) for n in nodes]), interval_s=3600)  # type: ignore[arg-type]
    d = Dispatcher(db, WorkerPool(lambda name, resources: None), SystemClock(), nodes=tracker)  # type: ignore[arg-type,return-value]
    d.pool = pool  # type: ignore[assignment]
    tracker.sync()
    assert d.node_view is tracker.view
    job_id = make_job(db, chunks=2)
    lost = {}
    for i, node_id in enumerate(["n2", "n1"]):
        slot = next(s for s in pool.slots if s.node_id == node_id)
        dispatch(db, f"{job_id}-t{i}", slot.node)
        slot.task_id, slot.job_id, slot.attempt = f"{job_id}-t{i}", job_id, 1
        lost[node_id] = slot
    nodes[1]["Alive"] = False  # n2 dies; the tracker has not synced since (its interval is an hour)
    d._lose(lost["n2"], "ActorDiedError: node died", died=True)
    d._lose(lost["n1"], "ActorDiedError: boom", died=True)
    _, tasks = state(db, job_id)
    assert [(t.status, t.failures) for t in tasks] == [("queued", 0), ("soft-failed", 1)]
    with db.session() as s:
        reasons = {a.task_id: a.reason for a in s.scalars(select(TaskAttempt).join(Task).where(Task.job_id == job_id))}
    assert reasons[f"{job_id}-t0"].startswith("worker lost: node box:7002 left the cluster")
    assert "worker process died" in reasons[f"{job_id}-t1"]
