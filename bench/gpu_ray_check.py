"""GPU placement check for a render node: Ray's view of the GPUs, the farm's slots on them, and what a Blender
child started by each slot can see and use.

Usage (on a machine with NVIDIA GPUs, Ray and the farm's code importable; no Blender needed)::

    python bench/gpu_ray_check.py [--out result.json] [--probe-python PYTHON]

What it does, on 127.0.0.1 only:

1. Reads the GPUs from ``nvidia-smi`` and what Ray's own detection finds.
2. Starts a Ray cluster the way the chart does: a head with no CPUs or GPUs, and a render node joining it with
   its GPUs detected by Ray, token authentication on.
3. Runs the farm's ``NodeView`` and ``NodeTracker`` over it with a real ``WorkerPool`` (the null renderer), so
   the render slots are the ones the scheduler would make: one per GPU plus a CPU slot. Each slot's actor reports
   the ``CUDA_VISIBLE_DEVICES`` Ray gave it.
4. Starts probe actors with the very options a slot's actor gets (``scheduler.pool.actor_options``). Each builds
   its child's environment the way a render worker does (``workers.child_env.child_environment``) and starts a
   child that counts the CUDA devices it sees, runs a small computation on each and reports their UUIDs (with
   PyTorch where ``--probe-python`` has it, the stand-in for Blender's Cycles). While the GPU probes hold every
   GPU, one more GPU actor must stay unplaced.

5. Runs the farm's real ``Dispatcher`` over those slots (SQLite, a local store, the null renderer) with a
   ``--gpu`` job that may not fall back to CPU and a CPU job: every chunk of the first must run on the GPU slot and
   be metered as GPU time, every chunk of the second on the CPU slot.

Prints one JSON object and exits 0 when every check holds, 1 otherwise (each check is named in ``checks``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import ray  # noqa: E402

from scheduler.nodes import NodeTracker, NodeView, layout_with  # noqa: E402
from scheduler.pool import WorkerPool, actor_options  # noqa: E402
from scheduler.ray_runtime import TOKEN_ENV, _use_token  # noqa: E402
from storage.factory import StoreConfig  # noqa: E402
from workers.actor import WorkerConfig  # noqa: E402

CHILD_PROBE = """
import json, os
out = {"cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
try:
    import torch
except ImportError:
    out["torch"] = False
else:
    out["torch"] = True
    out["count"] = torch.cuda.device_count()
    out["devices"] = []
    for i in range(out["count"]):
        props = torch.cuda.get_device_properties(i)
        a = torch.arange(1 << 20, device=f"cuda:{i}", dtype=torch.float32)
        ok = float(a.sum()) == float((1 << 20) * ((1 << 20) - 1) / 2)
        out["devices"].append({"name": props.name, "uuid": str(props.uuid), "sum_ok": ok})
print("PROBE=" + json.dumps(out), flush=True)
"""


class Probe:
    """Stands in for a render slot's actor: same Ray options, same child environment rule."""

    def __init__(self, has_gpu: bool, python: str) -> None:
        self.has_gpu = has_gpu
        self.python = python

    def run(self) -> dict[str, Any]:
        from workers.child_env import child_environment

        home = Path(tempfile.mkdtemp(prefix="probe-")) / "home"
        env = child_environment(os.environ, home, has_gpu=self.has_gpu)
        env["PATH"] = os.environ.get("PATH", env["PATH"])
        done = subprocess.run(
            [self.python, "-c", CHILD_PROBE], env=env, capture_output=True, text=True, timeout=180, check=False
        )
        child: dict[str, Any] = {"returncode": done.returncode, "stderr": done.stderr[-2000:]}
        for line in done.stdout.splitlines():
            if line.startswith("PROBE="):
                child.update(json.loads(line.removeprefix("PROBE=")))
        return {
            "actor_cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "ray_gpu_ids": [str(x) for x in ray.get_runtime_context().get_accelerator_ids().get("GPU", [])],
            "child": child,
        }


def nvidia_gpus() -> list[dict[str, str]]:
    try:
        text = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,uuid,name,pci.bus_id", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    rows = [[part.strip() for part in line.split(",")] for line in text.splitlines() if line.strip()]
    return [{"index": r[0], "uuid": r[1], "name": r[2], "pci_bus_id": r[3]} for r in rows]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ray_cli(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ray.scripts.scripts", *args], env=env, timeout=180, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"ray {args[0]} failed with status {done.returncode}")


def dispatch_check(pool: WorkerPool, work: Path, checks: dict[str, bool]) -> dict[str, Any]:
    """A GPU job (no CPU fallback) and a CPU job through the real dispatcher; where each chunk ran and how it
    was metered."""
    import threading

    from sqlalchemy import select

    from farm.clock import SystemClock
    from farm.contract import JobCreate, ManifestEntry, Role
    from farm.db.engine import Database
    from farm.db.models import Blob, Job, Task, TaskAttempt, UsageEntry
    from farm.domain.states import JOB_TERMINAL
    from farm.services import jobs
    from farm.services.auth import Principal, ensure_company
    from scheduler.dispatcher import DispatchConfig, Dispatcher
    from scheduler.fairshare import FairShare
    from storage.base import blob_key
    from storage.local import LocalDirStore

    blend = b"BLENDER-v500 null renderer input"
    digest = hashlib.sha256(blend).hexdigest()
    db = Database(f"sqlite:///{work / 'farm.db'}")
    db.migrate()
    store = LocalDirStore(work / "store")
    clock = SystemClock()
    with db.session() as s:
        company = ensure_company(s, "studio", clock.now())
        s.add(Blob(company_id=company.id, sha256=digest, size=len(blend), created_at=clock.now()))
        who = Principal(token_id="check", company_id=company.id, company=company.name, role=Role.COMPANY_ADMIN)
    (work / "blend.bin").write_bytes(blend)
    store.put_file(blob_key(who.company_id, digest), work / "blend.bin")
    manifest = {"scene.blend": ManifestEntry(sha256=digest, size=len(blend))}
    ids: dict[str, str] = {}
    with db.session() as s:
        for kind, gpu in (("gpu", True), ("cpu", False)):
            body = JobCreate(
                name=f"{kind}-job",
                blend_file="scene.blend",
                manifest=manifest,
                frames="1-6",
                chunk_size=1,
                gpu=gpu,
                allow_cpu_fallback=not gpu,
            )
            ids[kind] = jobs.create_job(s, who, body, clock.now()).id
    dispatcher = Dispatcher(db, pool, clock, DispatchConfig(interval_s=0.01), FairShare(600.0, 600.0))
    stop = threading.Event()
    thread = threading.Thread(target=dispatcher.run, args=(stop,), daemon=True)
    thread.start()
    out: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with db.session() as s:
                rows = {kind: s.get(Job, job_id) for kind, job_id in ids.items()}
                if all(row is not None and row.status in JOB_TERMINAL for row in rows.values()):
                    break
            time.sleep(0.1)
        with db.session() as s:
            for kind, job_id in ids.items():
                row = s.get(Job, job_id)
                workers = s.scalars(
                    select(TaskAttempt.worker).join(Task, Task.id == TaskAttempt.task_id).where(Task.job_id == job_id)
                ).all()
                metered = s.scalars(select(UsageEntry.resource).where(UsageEntry.job_id == job_id)).all()
                out[kind] = {
                    "status": None if row is None else row.status.value,
                    "reason": None if row is None else row.status_reason,
                    "slots": sorted(set(workers)),
                    "attempts": len(workers),
                    "metered": sorted(set(metered)),
                }
    finally:
        stop.set()
        dispatcher.wake.set()
        thread.join(timeout=10)
        db.dispose()
    gpu_names = {slot.name for slot in pool.slots if slot.gpus > 0}
    cpu_names = {slot.name for slot in pool.slots if slot.gpus == 0}
    gpu, cpu = out["gpu"], out["cpu"]
    # A GPU slot's core is metered too (the slot's resources): GPU time must be there.
    checks["the GPU job completed, every chunk on a GPU slot, metered as GPU time"] = (
        gpu["status"] == "completed" and set(gpu["slots"]) <= gpu_names and "gpu" in gpu["metered"]
    )
    checks["the CPU job completed, every chunk on the CPU slot, metered as CPU time"] = (
        cpu["status"] == "completed" and set(cpu["slots"]) <= cpu_names and cpu["metered"] == ["cpu"]
    )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON result here")
    parser.add_argument("--probe-python", default=sys.executable, help="Python the probe children run")
    parser.add_argument(
        "--declare-gpus", type=int, default=None, help="tell Ray the render node has N GPUs (a dry run without one)"
    )
    args = parser.parse_args()

    result: dict[str, Any] = {"nvidia_smi": nvidia_gpus()}
    checks: dict[str, bool] = {}
    from ray._private.accelerators import get_accelerator_manager_for_resource

    manager = get_accelerator_manager_for_resource("GPU")
    detected = int(manager.get_current_node_num_accelerators()) if manager is not None else 0
    result["ray_detected_gpus"] = detected
    checks["nvidia-smi lists a GPU"] = bool(result["nvidia_smi"])
    checks["Ray detects every GPU nvidia-smi lists"] = detected == len(result["nvidia_smi"])

    # Token authentication as in the chart (a multi-node cluster, so not the embedded mode's LOOPBACK_ENV).
    token = secrets.token_hex(32)
    env = {**os.environ, "RAY_AUTH_MODE": "token", TOKEN_ENV: token}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    os.environ.update(RAY_AUTH_MODE="token", PYTHONPATH=env["PYTHONPATH"])
    _use_token(token)
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="gpu-ray-check-"))
    common = ["--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    ray_cli(
        ["start", "--head", f"--port={port}", "--num-cpus=0", "--num-gpus=0", "--include-dashboard=false", *common], env
    )
    declared = [] if args.declare_gpus is None else [f"--num-gpus={args.declare_gpus}"]
    ray_cli(["start", f"--address=127.0.0.1:{port}", "--num-cpus=4", *declared, *common], env)
    try:
        ray.init(address=f"127.0.0.1:{port}", namespace="render-farm", log_to_driver=False)
        result["cluster_resources"] = ray.cluster_resources()  # type: ignore[no-untyped-call]

        view = NodeView()
        nodes = [n for n in view.refresh() if n.alive]
        result["nodes"] = [{"name": n.name, "cpus": n.cpus, "gpus": n.gpus} for n in nodes]
        if args.declare_gpus is not None:
            detected = args.declare_gpus
        checks["the node view sees the render node's GPUs"] = sum(n.gpus for n in nodes) == detected > 0

        def make_config(name: str, resources: dict[str, float]) -> WorkerConfig:
            return WorkerConfig(
                name=name.replace("/", "_"),
                store=StoreConfig(backend="local", root=str(work / "store")),
                cache_dir=str(work / "cache"),
                cache_bytes=1 << 30,
                work_dir=str(work / "slots"),
                resources=resources,
                renderer="sleep:0",
            )

        pool = WorkerPool(make_config)
        tracker = NodeTracker(pool, view=view, layout=layout_with(0, True))
        tracker.sync(force=True)
        deadline = time.monotonic() + 120
        while any(not s.ready for s in pool.slots) and time.monotonic() < deadline:
            pool.poll_warm()
            time.sleep(0.2)
        result["slots"] = [
            {"name": s.name, "resources": s.resources, "ready": s.ready, "gpu_ids": s.info.get("gpu_ids")}
            for s in pool.slots
        ]
        gpu_slots = [s for s in pool.slots if s.gpus > 0]
        checks["one warm slot per GPU"] = len(gpu_slots) == detected and all(s.ready for s in gpu_slots)
        checks["each GPU slot was given its own GPU"] = sorted(str(s.info.get("gpu_ids")) for s in gpu_slots) == [
            str(i) for i in range(detected)
        ]
        result["dispatch"] = dispatch_check(pool, work, checks)
        slot_resources = [dict(s.resources) for s in pool.slots]
        node_id = pool.slots[0].node_id if pool.slots else ""
        for slot in list(pool.slots):
            pool.remove(slot)  # the probes take the same resources next

        probe_cls: Any = ray.remote(Probe)
        probes = [
            probe_cls.options(**actor_options(res, node_id)).remote(res.get("gpu", 0.0) > 0, args.probe_python)
            for res in slot_resources
        ]
        reports = ray.get([p.run.remote() for p in probes], timeout=300)
        result["probes"] = [{"resources": res, **rep} for res, rep in zip(slot_resources, reports, strict=True)]
        uuids = {g["uuid"].removeprefix("GPU-") for g in result["nvidia_smi"]}
        seen: list[str] = []
        for res, rep in zip(slot_resources, reports, strict=True):
            child = rep["child"]
            if res.get("gpu", 0.0) > 0:
                checks[f"GPU probe {rep['ray_gpu_ids']}: its child sees exactly one GPU"] = child.get("count") == 1
                devices = child.get("devices") or [{}]
                seen.append(str(devices[0].get("uuid", "")))
                checks[f"GPU probe {rep['ray_gpu_ids']}: the child computes on it"] = bool(devices[0].get("sum_ok"))
            else:
                checks["CPU probe: its child sees no GPU"] = child.get("count") == 0
        checks["the GPU probes' children see different GPUs, all of this node's"] = (
            len(set(seen)) == len(seen) == detected and {u.removeprefix("GPU-") for u in seen} <= uuids
        )
        # Every GPU is held by a probe now: one more GPU actor must wait.
        extra = probe_cls.options(**actor_options({"gpu": 1.0, "cpu": 0.0}, node_id)).remote(True, args.probe_python)
        ready, _ = ray.wait([extra.run.remote()], timeout=5)
        placed = False
        if ready:  # an answer: it ran (placed beyond the GPUs), or Ray refused it as unschedulable
            try:
                ray.get(ready[0])
                placed = True
            except Exception as exc:
                result["extra_gpu_actor"] = str(exc)[:300]
        checks["no GPU actor is placed beyond the node's GPUs"] = not placed
        ray.kill(extra)
        for probe in probes:
            ray.kill(probe)
    finally:
        ray.shutdown()
        ray_cli(["stop", "--force"], env)
        shutil.rmtree(work, ignore_errors=True)

    result["checks"] = checks
    result["ok"] = all(checks.values())
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
