"""Multi-node reliability on a real two-node Ray cluster, `farm scheduler` and `farm api` as separate processes.

Everything runs inside ``unshare --net --pid --fork --mount-proc`` (root only): only ``lo`` exists there, so every
socket stays on loopback, and every process dies with the namespace. ``cluster_scenario.py`` drives it and
writes a JSON report; the tests below read it. One run serves all of them (about a minute).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.isolated import run_scenario, skip_unless_isolated

pytestmark = [pytest.mark.ray]

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    skip_unless_isolated()
    out = tmp_path_factory.mktemp("cluster") / "report.json"
    return run_scenario(HERE / "cluster_scenario.py", [out], out, timeout=400)


def attempts(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for t in tasks for a in t["attempts"]]


def frame_numbers(frames: list[dict[str, Any]]) -> list[int]:
    return [f["frame"] for f in frames]


def test_gpu_job_runs_only_on_the_gpu_slot(report):
    gpu = report["placement"]["gpu"]
    assert gpu["job"]["status"] == "completed", gpu["job"]["status_reason"]
    assert frame_numbers(gpu["frames"]) == list(range(1, 9))
    assert {a["worker"] for a in attempts(gpu["tasks"])} == {"gpu-node/gpu-0"}
    assert {a["node"] for a in attempts(gpu["tasks"])} == {"gpu-node"}
    assert {f["device"] for f in gpu["frames"]} == {"GPU:sleep"}  # recorded per frame


def test_cpu_job_never_takes_the_gpu_slot(report):
    cpu = report["placement"]["cpu"]
    assert cpu["job"]["status"] == "completed"
    assert frame_numbers(cpu["frames"]) == list(range(11, 19))
    assert not [a for a in attempts(cpu["tasks"]) if "/gpu-" in a["worker"]]
    assert {f["device"] for f in cpu["frames"]} == {"CPU"}


def test_bad_node_is_blocklisted_after_three_failed_chunks_and_the_job_completes_elsewhere(report):
    bl = report["blocklist"]
    assert bl["job"]["status"] == "completed", bl["job"]["status_reason"]
    assert frame_numbers(bl["frames"]) == list(range(31, 41))
    failed = [a for a in attempts(bl["tasks"]) if a["status"] == "failed"]
    assert len(failed) == 3 and {a["node"] for a in failed} == {"gpu-node"}
    assert all("134" in a["reason"] and "Segmentation fault" in a["log_tail"] for a in failed)
    # Each failed chunk was retried on the other node.
    for task in bl["tasks"]:
        if task["attempts"][0]["status"] == "failed":
            assert task["attempts"][-1]["node"] == "head-node" and task["attempts"][-1]["status"] == "completed"
    nodes = {n["node"]: n for n in bl["api"]["nodes"]}
    assert nodes["gpu-node"]["blocked"] and nodes["gpu-node"]["failures"] == 3
    assert "gpu-node" in bl["cli"]["output"] and bl["cli"]["exit_code"] == 0


def test_unblock_from_the_cli_clears_the_node(report):
    bl = report["blocklist"]
    assert bl["unblock"]["exit_code"] == 0, bl["unblock"]["output"]
    assert bl["after_unblock"]["nodes"] == []


def test_crashing_frame_is_retried_then_fails_the_chunk_and_the_job_says_why(report):
    crash = report["crash"]
    job = crash["job"]
    assert job["status"] == "failed"
    assert "1 of 4 chunk(s) failed" in job["status_reason"] and "frame 52" in job["status_reason"]
    assert "status 134" in job["status_reason"]
    bad = next(t for t in crash["tasks"] if t["frames"] == "52")
    assert bad["status"] == "failed" and [a["status"] for a in bad["attempts"]] == ["failed"] * 3
    # "continue": every other chunk rendered.
    assert frame_numbers(crash["frames"]) == [51, 53, 54]
    # Retried on another node while one existed.
    assert bad["attempts"][0]["node"] != bad["attempts"][1]["node"]
    assert "frame 52" in crash["status_cli"]["output"]
    assert "Segmentation fault" in crash["logs_cli"]["output"]


def test_retry_requeues_the_failed_chunk_with_fresh_attempts(report):
    crash = report["crash"]
    assert crash["retry_cli"]["exit_code"] == 0, crash["retry_cli"]["output"]
    bad = next(t for t in crash["after_retry"]["tasks"] if t["frames"] == "52")
    assert len(bad["attempts"]) > 3


def test_fail_job_policy_stops_the_job_at_the_first_failed_chunk(report):
    fj = report["crash"]["fail_job"]
    assert fj["job"]["status"] == "failed"
    assert "chunk 1 (frames 52) failed 1 time(s)" in fj["job"]["status_reason"]
    statuses = {t["status"] for t in fj["tasks"]}
    assert "canceled" in statuses and statuses <= {"completed", "failed", "canceled"}


def test_hung_attempt_is_killed_when_its_lease_expires_and_retried(report):
    lease = report["lease"]
    assert lease["job"]["status"] == "failed"
    [task] = lease["tasks"]
    assert [a["status"] for a in task["attempts"]] == ["failed", "failed"]
    assert all("lease expired" in a["reason"] for a in task["attempts"])
    assert task["attempts"][0]["node"] != task["attempts"][1]["node"]  # retried on the other node
    assert "lease expired" in lease["job"]["status_reason"]


def test_cancel_inside_a_hung_frame_takes_under_two_seconds(report):
    cancel = report["cancel"]
    assert cancel["job"]["status"] == "canceled"
    assert cancel["seconds"] < 2.0


def test_pause_lets_running_chunks_finish_then_resume_completes(report):
    pause = report["pause"]
    assert pause["cli"]["exit_code"] == 0, pause["cli"]["output"]
    assert pause["status_after_call"] == "pause-requested"
    at = pause["at_pause"]
    assert at["job"]["status"] == "paused"
    assert {t["status"] for t in at["tasks"]} == {"completed", "paused"}
    assert all(a["status"] == "completed" for a in attempts(at["tasks"]))  # nothing was stopped
    end = pause["end"]
    assert end["job"]["status"] == "completed" and frame_numbers(end["frames"]) == list(range(71, 79))


def test_pause_now_stops_running_chunks_and_resume_renders_every_frame(report):
    pn = report["pause_now"]
    assert pn["cli"]["exit_code"] == 0, pn["cli"]["output"]
    assert pn["seconds"] < 3.0
    stopped = [a for a in attempts(pn["at_pause"]["tasks"]) if a["status"] == "canceled"]
    assert stopped, pn["at_pause"]
    end = pn["end"]
    assert end["job"]["status"] == "completed"
    assert frame_numbers(end["frames"]) == list(range(79, 87))
    assert end["stored"]["names"] == [f"frame_{i:06d}.png" for i in range(79, 87)] and end["stored"]["valid"]


def test_scheduler_kill_and_restart_completes_without_rerendering_or_duplicates(report):
    rs = report["restart"]
    end = rs["end"]
    assert end["job"]["status"] == "completed", end["job"]["status_reason"]
    assert frame_numbers(end["frames"]) == list(range(101, 161))
    assert end["stored"]["names"] == [f"frame_{i:06d}.png" for i in range(101, 161)]
    assert end["stored"]["valid"]  # every file whole, and the one its row names
    after = {t["id"]: t for t in end["tasks"]}
    done_before = [t for t in rs["before"] if t["status"] == "completed"]
    assert len(done_before) >= 3
    for task in done_before:  # not rendered again
        assert len(after[task["id"]]["attempts"]) == len(task["attempts"])
    lost = [a for t in end["tasks"] for a in t["attempts"] if a["status"] == "lost"]
    assert lost and all("scheduler restarted" in a["reason"] for a in lost)


def test_gpu_node_loss_requeues_and_the_job_completes_on_cpu(report):
    nl = report["node_loss"]
    assert nl["killed_processes"] > 0
    end = nl["end"]
    assert end["job"]["status"] == "completed", end["job"]["status_reason"]
    assert frame_numbers(end["frames"]) == list(range(201, 231))
    assert end["stored"]["names"] == [f"frame_{i:06d}.png" for i in range(201, 231)] and end["stored"]["valid"]
    devices = {f["device"] for f in end["frames"]}
    assert devices == {"GPU:sleep", "CPU"}  # started on the GPU, finished on the CPU fallback
    nodes = {a["node"] for a in attempts(end["tasks"]) if a["status"] == "completed"}
    assert nodes == {"gpu-node", "head-node"}


def test_gpu_job_without_fallback_waits_with_a_reason_once_no_gpu_is_left(report):
    waiting = report["node_loss"]["waiting"]
    assert waiting["status"] == "queued"
    assert waiting["status_reason"].startswith("waiting: no GPU slot")
    assert report["node_loss"]["waiting_canceled"]["status"] == "canceled"


def test_the_whole_scenario_stays_quick(report):
    assert report["timings"]["total"] < 180, report["timings"]
