"""Demand-driven scaling on Ray's own autoscaler (issue 15): a CPU job and a GPU job on an empty cluster bring up
worker nodes of the right group, render there, and the nodes go away after the idle timeouts.

``autoscale_scenario.py`` runs inside ``unshare --net --pid --fork --mount-proc`` (root only): only ``lo`` exists
there, and the ``ray stop --force`` of Ray's test cluster reaches no process outside. One run (about a minute and
a half) serves every test below.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.autoscale.autoscale_scenario import CPU_FRAMES
from tests.isolated import run_scenario, skip_unless_isolated

pytestmark = [pytest.mark.ray]

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    skip_unless_isolated()
    out = tmp_path_factory.mktemp("autoscale") / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "FARM_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # Ray's test cluster runs `ray`
    return run_scenario(HERE / "autoscale_scenario.py", [out], out, timeout=400, env=env)


def test_the_cluster_starts_empty_and_the_queue_becomes_demand_per_group(report):
    assert report["nodes_at_start"] == 0
    requests = report["requests"]
    assert requests[0] == []  # nothing queued yet
    # Both groups at once, each capped by the farm's maximum (2 CPU slots of 2 cores, 1 GPU slot), though 40 CPU
    # and 6 GPU chunks wait.
    assert sorted(map(json.dumps, requests[1])) == sorted(map(json.dumps, [{"GPU": 1.0}, {"CPU": 2.0}, {"CPU": 2.0}]))
    assert max(sum(1 for b in r if "GPU" in b) for r in requests) == 1
    assert requests[-1] == []  # and nothing once the queue drained: the cluster may scale down


def test_nodes_of_each_group_come_up_for_their_own_chunks(report):
    assert sorted(report["peak_nodes"]) == [["cpu", 2.0], ["cpu", 2.0], ["gpu", 1.0]]


def _frames_stored(part: dict[str, Any], numbers: range) -> None:
    assert part["job"]["status"] == "completed", part["job"]["status_reason"]
    frames = {f["name"]: f for f in part["frames"]}
    assert sorted(f["frame"] for f in part["frames"]) == list(numbers)
    assert set(part["stored"]) == set(frames)
    for name, stored in part["stored"].items():  # every frame whole, and the one its row names
        assert stored["png"] and stored["sha256"] == frames[name]["sha256"]


def test_the_cpu_job_renders_on_the_cpu_nodes_that_joined(report):
    cpu = report["cpu"]
    _frames_stored(cpu, range(1, CPU_FRAMES + 1))
    workers = {a["worker"] for a in cpu["attempts"] if a["status"] == "completed"}
    assert all(w.endswith("/cpu") for w in workers), workers
    # A slot on each CPU node as it joined (when each node joined, and how long the job took, say why not).
    assert len({a["node"] for a in cpu["attempts"]}) == 2, (report.get("joined_s"), report.get("cpu_job_s"))
    assert {f["device"] for f in cpu["frames"]} == {"CPU"}


def test_the_gpu_job_renders_only_on_the_gpu_node(report):
    gpu = report["gpu"]
    _frames_stored(gpu, range(21, 27))
    assert {a["worker"].split("/")[1] for a in gpu["attempts"]} == {"gpu-0"}
    assert len({a["node"] for a in gpu["attempts"]}) == 1
    assert {f["device"] for f in gpu["frames"]} == {"GPU:sleep"}


def test_idle_slots_are_released_and_the_nodes_go_away(report):
    assert report["nodes_at_end"] == 0 and report["slots_at_end"] == []
    timings = report["timings"]
    # Slot idle timeout 2 s, node idle timeout 3 s, the autoscaler's 1 s turns: well under half a minute.
    assert timings["scaled_down"] - timings["jobs_done"] < 30, timings
