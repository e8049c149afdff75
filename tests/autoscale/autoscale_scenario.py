"""Driver of the autoscaling test; runs INSIDE ``unshare --net --pid --fork --mount-proc`` (only ``lo`` exists,
and ``ray stop --force``, which Ray's test cluster runs, sees only this namespace's processes).

It starts Ray's own autoscaling test cluster (``ray.cluster_utils.AutoscalingCluster``: a real autoscaler with
the fake multi-node provider, which starts and stops real raylets on this machine) with a head that has no CPU
for work, a CPU worker type (2 CPUs, 0 to 2 nodes) and a GPU worker type (1 CPU and 1 GPU declared to Ray, 0 to
2 nodes). The scheduler (``farm.runtime.scheduler.SchedulerProcess`` with ``FARM_AUTOSCALE``) and the API run in
this process; the renderer is the null renderer (``sleep:``). A CPU job and a GPU job are submitted to the empty
cluster; the report says which nodes came up, what the scheduler asked Ray for, where each chunk ran, what the
store holds, and when the worker nodes went away again.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

SLOT_IDLE_TIMEOUT_S = 2.0
# Enough 0.4 s frames that one CPU slot alone needs about 16 s: the second CPU node, started by the autoscaler at
# the same time as the first but joining a few seconds later on a busy machine, still finds chunks waiting.
CPU_FRAMES = 40
NODE_IDLE_TIMEOUT_MIN = 0.05  # 3 s
NODE_TYPES = {
    "cpu-worker": {
        "resources": {"CPU": 2, "object_store_memory": 80_000_000},
        "node_config": {},
        "min_workers": 0,
        "max_workers": 2,
    },
    "gpu-worker": {
        "resources": {"CPU": 1, "GPU": 1, "object_store_memory": 80_000_000},
        "node_config": {},
        "min_workers": 0,
        "max_workers": 2,
    },
}
# The fake provider's cluster config. Ray's wheel leaves out the example file its AutoscalingCluster reads, so the
# test carries the base config itself.
BASE_CONFIG: dict[str, Any] = {
    "cluster_name": "farm-autoscale",
    "max_workers": 4,
    "provider": {
        "type": "fake_multinode",
        "use_node_id_as_ip": True,
        "disable_node_updaters": True,
        "disable_launch_config_check": True,
    },
    "head_node_type": "ray.head.default",
    "auth": {},
    "upscaling_speed": 1.0,
    "idle_timeout_minutes": NODE_IDLE_TIMEOUT_MIN,
    "docker": {},
    "file_mounts": {},
    "cluster_synced_files": [],
    "file_mounts_sync_continuously": False,
    "rsync_exclude": [],
    "rsync_filter": [],
    **{
        key: []
        for key in (
            "initialization_commands",
            "setup_commands",
            "head_setup_commands",
            "worker_setup_commands",
            "head_start_ray_commands",
            "worker_start_ray_commands",
        )
    },
}


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def worker_nodes() -> list[dict[str, Any]]:
    """Alive Ray nodes other than the head (the head has no CPU for work)."""
    import ray

    return [n for n in ray.nodes() if n["Alive"] and "node:__internal_head__" not in n["Resources"]]


def main(report_path: Path) -> None:
    from ray.cluster_utils import AutoscalingCluster

    class FarmTestCluster(AutoscalingCluster):
        def _generate_config(
            self,
            head_resources: dict[str, Any],
            worker_node_types: dict[str, Any],
            autoscaler_v2: bool = False,
            **kw: Any,
        ) -> dict[str, Any]:
            config = copy.deepcopy(BASE_CONFIG)
            config["available_node_types"] = copy.deepcopy(worker_node_types)
            config["available_node_types"]["ray.head.default"] = {
                "resources": dict(head_resources),
                "node_config": {},
                "max_workers": 0,
            }
            config.update(kw)
            return config

    report: dict[str, Any] = {"errors": [], "timings": {}}
    t0 = time.monotonic()

    def mark(name: str) -> None:
        report["timings"][name] = round(time.monotonic() - t0, 1)

    def save() -> None:
        report_path.write_text(json.dumps(report, indent=1, default=str))

    work = Path(tempfile.mkdtemp(prefix="farm-as-"))
    os.environ.update(
        RAY_TMPDIR=str(work / "r"),  # short: Ray's socket paths must stay under 108 bytes
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="1",
        RAY_AUTH_MODE="disabled",
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONPATH=str(REPO),  # the fake nodes' workers import the farm's actor class
    )
    cluster = FarmTestCluster(
        head_resources={"CPU": 0, "object_store_memory": 80_000_000},
        worker_node_types=NODE_TYPES,
    )
    stop = threading.Event()
    try:
        cluster.start()
        mark("cluster")
        run(report, work, stop, mark, save)
    except Exception:
        report["errors"].append(traceback.format_exc())
    finally:
        stop.set()
        save()
        try:
            cluster.shutdown()
        except Exception:
            report["errors"].append(traceback.format_exc())
            save()


def run(
    report: dict[str, Any],
    work: Path,
    stop: threading.Event,
    mark: Callable[[str], None],
    save: Callable[[], None],
) -> None:
    import ray

    from farm.client import FarmClient
    from farm.contract import JobCreate, ManifestEntry
    from farm.domain.states import JOB_TERMINAL
    from farm.runtime.scheduler import SchedulerProcess
    from farm.settings import ServerSettings
    from scheduler.demand import Autoscaler
    from tests.factories import api_farm, serve

    data = work / "data"
    settings = ServerSettings(
        mode="cluster",
        data_dir=data,
        secret_key="autoscale-test-secret-key",
        renderer="sleep:0.4",
        write_cli_config=False,
        autoscale=True,
        slot_idle_timeout_s=SLOT_IDLE_TIMEOUT_S,
        autoscale_max_cpu_slots=2,
        autoscale_max_gpu_slots=1,
        cpu_slot_cores=2,
        dispatch_interval_s=0.05,
    )
    with api_farm(data) as farm, serve(farm.app) as url:
        process = SchedulerProcess(settings, "127.0.0.1:6379")
        dispatcher = process.prepare()
        mark("scheduler")
        report["nodes_at_start"] = len(worker_nodes())
        [autoscaler] = [hook for hook in dispatcher.periodic if isinstance(hook, Autoscaler)]
        requests: list[list[dict[str, float]]] = []
        ask = autoscaler.request

        def recording(bundle_list: list[dict[str, float]]) -> None:
            requests.append([dict(b) for b in bundle_list])
            ask(bundle_list)

        autoscaler.request = recording
        seen: dict[str, dict[str, Any]] = {}  # worker node id -> its resources, every node that ever came up
        joined: dict[str, float] = {}  # worker node id -> seconds after the submit when the watcher first saw it
        t_submit = time.monotonic()  # set again at the submit; no worker node exists before it

        def watch() -> None:
            while not stop.is_set():
                try:
                    for node in worker_nodes():
                        seen.setdefault(node["NodeID"], dict(node["Resources"]))
                        joined.setdefault(node["NodeID"], round(time.monotonic() - t_submit, 1))
                except Exception:
                    pass
                time.sleep(0.2)

        loop = threading.Thread(target=dispatcher.run, args=(stop,), daemon=True)
        watcher = threading.Thread(target=watch, daemon=True)
        loop.start()
        watcher.start()
        try:
            client = FarmClient(url, farm.admin_token)
            blend = b"BLENDER-v500 stand-in scene: the null renderer does not read it"
            sha = hashlib.sha256(blend).hexdigest()
            path = work / "scene.blend"
            path.write_bytes(blend)
            client.upload_blob(path, sha, len(blend))

            def submit(name: str, frames: str, **options: Any) -> str:
                spec = JobCreate(
                    name=name,
                    blend_file="scene.blend",
                    manifest={"scene.blend": ManifestEntry(sha256=sha, size=len(blend))},
                    frames=frames,
                    chunk_size=1,
                    **options,
                )
                return str(client.create_job(spec).id)

            t_submit = time.monotonic()
            cpu_job = submit("cpu", f"1-{CPU_FRAMES}")
            gpu_job = submit("gpu", "21-26", gpu=True, allow_cpu_fallback=False)
            for job_id in (cpu_job, gpu_job):
                wait_for(f"job {job_id}", lambda j=job_id: client.job(j).status in JOB_TERMINAL, 150)
            mark("jobs_done")
            report["cpu_job_s"] = round(time.monotonic() - t_submit, 1)
            report["slots_when_done"] = sorted(slot.name for slot in dispatcher.pool.slots)
            for name, job_id in (("cpu", cpu_job), ("gpu", gpu_job)):
                tasks = [t.model_dump(mode="json") for t in client.tasks(job_id).tasks]
                frames = [f.model_dump(mode="json") for f in client.frames(job_id).frames]
                files = {
                    p.name: p.read_bytes() for p in (data / "objects").rglob("*") if p.is_file() and job_id in p.parts
                }
                report[name] = {
                    "job": client.job(job_id).model_dump(mode="json"),
                    "attempts": [a for t in tasks for a in t["attempts"]],
                    "frames": frames,
                    "stored": {
                        n: {"sha256": hashlib.sha256(b).hexdigest(), "png": b[:8] == b"\x89PNG\r\n\x1a\n"}
                        for n, b in files.items()
                    },
                }
            save()
            report["peak_nodes"] = sorted(
                ("gpu" if res.get("GPU") else "cpu", float(res.get("CPU", 0))) for res in seen.values()
            )
            wait_for("the worker nodes to go away", lambda: not worker_nodes(), 90)
            mark("scaled_down")
            report["nodes_at_end"] = len(worker_nodes())
            report["slots_at_end"] = [slot.name for slot in dispatcher.pool.slots]
            report["requests"] = requests
            report["node_ids_seen"] = sorted(seen)
            report["joined_s"] = {("gpu" if seen[n].get("GPU") else "cpu") + f"-{i}": t for i, (n, t) in enumerate(
                sorted(joined.items(), key=lambda item: item[1]))}
            report["ray_ok"] = ray.is_initialized()
        finally:
            stop.set()
            loop.join(timeout=20)
            process.stop_leading()
            process.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
