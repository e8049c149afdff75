"""The chart's demand-driven scaling (issue 15): the KubeRay autoscaler is on, with the idle timeout from the values,
and the scheduler gets the settings that make the queue Ray's demand, sized from the worker groups."""

from __future__ import annotations

from typing import Any

from .conftest import FULLNAME, Doc, containers, env_of, one, render

SCHEDULER = f"{FULLNAME}-scheduler"
RAY = f"{FULLNAME}-ray"


def scheduler_env(docs: list[Doc]) -> dict[str, Any]:
    spec = one(docs, "Deployment", SCHEDULER)["spec"]["template"]["spec"]
    [farm] = [c for c in containers(spec) if "scheduler" in " ".join(c.get("args", []) + c.get("command", []))]
    return env_of(farm)


def test_the_autoscaler_is_on_and_the_scheduler_asks_it_for_slots(default_docs: list[Doc]) -> None:
    spec = one(default_docs, "RayCluster", RAY)["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["autoscalerOptions"]["idleTimeoutSeconds"] == 60
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert groups["cpu"]["minReplicas"] == 0 and groups["gpu"]["minReplicas"] == 0  # scale to zero when idle
    env = scheduler_env(default_docs)
    assert env["FARM_AUTOSCALE"] == "true"
    assert env["FARM_SLOT_IDLE_TIMEOUT_S"] == "120"
    assert env["FARM_CPU_SLOT_CORES"] == "8"  # one slot per CPU pod: its bundle is the pod's cores
    assert env["FARM_AUTOSCALE_MAX_CPU_SLOTS"] == "10"  # cpuWorkers.maxReplicas
    assert env["FARM_AUTOSCALE_MAX_GPU_SLOTS"] == "4"  # gpuWorkers.maxReplicas x gpusPerPod


def test_caps_and_slot_size_follow_the_worker_groups() -> None:
    docs = render(
        {
            "head": {"autoscalerIdleTimeoutSeconds": 30},
            "scheduler": {"slotIdleTimeoutSeconds": 45},
            "cpuWorkers": {"maxReplicas": 3, "resources": {"limits": {"cpu": "7500m"}, "requests": {"cpu": "7500m"}}},
            "gpuWorkers": {"maxReplicas": 2, "gpusPerPod": 4},
        }
    )
    assert one(docs, "RayCluster", RAY)["spec"]["autoscalerOptions"]["idleTimeoutSeconds"] == 30
    env = scheduler_env(docs)
    assert (env["FARM_SLOT_IDLE_TIMEOUT_S"], env["FARM_CPU_SLOT_CORES"]) == ("45", "7")
    assert (env["FARM_AUTOSCALE_MAX_CPU_SLOTS"], env["FARM_AUTOSCALE_MAX_GPU_SLOTS"]) == ("3", "8")
    no_gpu = scheduler_env(render({"gpuWorkers": {"enabled": False}}))
    assert no_gpu["FARM_AUTOSCALE_MAX_GPU_SLOTS"] == "0"


def test_without_the_autoscaler_the_scheduler_keeps_every_nodes_slots() -> None:
    docs = render({"head": {"enableInTreeAutoscaling": False}})
    assert "autoscalerOptions" not in one(docs, "RayCluster", RAY)["spec"]
    assert not {k for k in scheduler_env(docs) if k.startswith(("FARM_AUTOSCALE", "FARM_SLOT_IDLE"))}
