"""Driver of the multi-node reliability test; runs INSIDE ``unshare --net --pid --fork --mount-proc``.

In there only ``lo`` exists, so every Ray, API and scheduler socket stays on loopback, and every process started
here dies with the namespace. It starts a two-node Ray cluster (``head-node``: 1 CPU; ``gpu-node``: 1 CPU and one
GPU declared to Ray, each in its own UTS namespace so the host names differ), then ``farm scheduler`` and
``farm api`` as separate processes on one SQLite database, runs the scenarios through the client SDK and the
CLI, and writes what it saw to a JSON report (after each scenario, so a crash still leaves the earlier ones).

The renderer is the fault script of ``workers.faults`` (no Blender): frame numbers choose the behaviour.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RAY_PORT = 6390
GPU_NODE_PORT = 6391
API_PORT = 8390
TASK_TIMEOUT_S = 2.5
RENDERER = ";".join(
    [
        "sleep:0.05",
        "fail:31-40@gpu-node",  # a bad node: every chunk of these frames fails there
        "fail:52",  # a frame that crashes Blender everywhere
        "hang:61-62",  # frames that never finish
        "slow:71-86=0.4",  # long enough to pause while they render
        "slow:101-160=0.1",
        "slow:201-230=0.1",
    ]
)


class Cluster:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.data = work / "data"
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "FARM_"))}
        self.env.update(
            # Multi-node on purpose; in this namespace only loopback exists, so nothing is reachable from outside.
            RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="1",
            RAY_AUTH_MODE="disabled",
            RAY_USAGE_STATS_ENABLED="0",
            # Notice a dead node within about two seconds instead of the default half minute.
            RAY_health_check_period_ms="500",
            RAY_health_check_timeout_ms="500",
            RAY_health_check_failure_threshold="3",
            FARM_MODE="cluster",
            FARM_SECRET_KEY="reliability-test-secret",
            FARM_DATA_DIR=str(self.data),
            FARM_RENDERER=RENDERER,
            FARM_TASK_TIMEOUT_S=str(TASK_TIMEOUT_S),
            FARM_BLOCKLIST_AFTER="3",
            XDG_CONFIG_HOME=str(work / "xdg-config"),
            XDG_CACHE_HOME=str(work / "xdg-cache"),
            PYTHONPATH=str(REPO),
        )
        self.scheduler: subprocess.Popen[bytes] | None = None
        self.api: subprocess.Popen[bytes] | None = None
        self.scheduler_starts = 0

    def ray_node(self, host: str, args: list[str]) -> subprocess.Popen[bytes]:
        """``ray start`` in its own UTS namespace, so the node's host name is ``host``."""
        common = ["--object-store-memory", "80000000", "--disable-usage-stats", "--temp-dir", str(self.work / "ray")]
        cmd = " ".join([*args, *common])
        return subprocess.Popen(
            ["unshare", "--uts", "sh", "-c", f"hostname {host} && exec {BIN}/ray {cmd}"],
            env=self.env,
            stdout=(self.logs / f"ray-{host}.log").open("ab"),
            stderr=subprocess.STDOUT,
        )

    def start_head(self) -> None:
        head = self.ray_node(
            "head-node",
            [
                "start",
                "--head",
                "--port",
                str(RAY_PORT),
                "--num-cpus",
                "1",
                "--num-gpus",
                "0",
                "--include-dashboard",
                "false",
            ],
        )
        if head.wait(120) != 0:
            raise RuntimeError(f"ray head did not start:\n{self.tail('ray-head-node.log')}")

    def start_gpu_node(self) -> subprocess.Popen[bytes]:
        """Joins while the scheduler runs: the scheduler must notice it and give it slots."""
        return self.ray_node(
            "gpu-node",
            [
                "start",
                "--address",
                f"127.0.0.1:{RAY_PORT}",
                "--num-cpus",
                "1",
                "--num-gpus",
                "1",
                "--resources",
                "'{\"fake_gpu\": 1}'",
                "--node-manager-port",
                str(GPU_NODE_PORT),
            ],
        )

    def start_scheduler(self) -> None:
        self.scheduler_starts += 1
        log = (self.logs / f"scheduler-{self.scheduler_starts}.log").open("ab")
        self.scheduler = subprocess.Popen(
            [str(BIN / "farm"), "scheduler", "--ray-address", f"127.0.0.1:{RAY_PORT}"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(self.work),
        )

    def start_api(self) -> None:
        self.api = subprocess.Popen(
            [str(BIN / "farm"), "api", "--port", str(API_PORT)],
            env=self.env,
            stdout=(self.logs / "api.log").open("ab"),
            stderr=subprocess.STDOUT,
            cwd=str(self.work),
        )

    def kill_scheduler(self) -> None:
        assert self.scheduler is not None
        self.scheduler.send_signal(signal.SIGKILL)
        self.scheduler.wait(10)

    def kill_gpu_node(self) -> int:
        """SIGKILL the gpu-node's raylet and every process it started (a machine that vanished)."""
        procs: dict[int, tuple[int, str]] = {}  # pid -> (parent pid, command line)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            procs[int(entry.name)] = (ppid, cmdline)
        raylets = [
            pid for pid, (_, cmd) in procs.items() if "raylet" in cmd and f"--node_manager_port={GPU_NODE_PORT}" in cmd
        ]
        victims = set(raylets)
        grew = True
        while grew:
            more = {pid for pid, (ppid, _) in procs.items() if ppid in victims} - victims
            victims |= more
            grew = bool(more)
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(victims)

    def tail(self, name: str, lines: int = 60) -> str:
        path = self.logs / name
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # the API may not be up yet
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise TimeoutError(f"{what}: not after {timeout}s (last: {last!r})")


def main(report_path: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="frel-", dir="/tmp"))  # short: Ray's socket paths have a length limit
    cluster = Cluster(work)
    report: dict[str, Any] = {"work": str(work), "errors": [], "timings": {}}
    started = time.monotonic()

    def save() -> None:
        report["timings"]["total"] = round(time.monotonic() - started, 1)
        report_path.write_text(json.dumps(report, indent=2, default=str))

    def mark(name: str) -> None:
        report["timings"][name] = round(time.monotonic() - started, 1)

    try:
        # The API needs no Ray: it starts (and migrates the database) while the head node starts.
        cluster.start_api()
        cluster.start_head()
        mark("ray_head")
        from farm.client import FarmClient

        token_file = cluster.data / "admin.token"
        wait_for("admin token", token_file.exists, 60)
        url = f"http://127.0.0.1:{API_PORT}"
        client = FarmClient(url, token_file.read_text().strip())
        wait_for("api", lambda: client.jobs() is not None, 60)
        mark("api")
        cluster.start_scheduler()
        joining = cluster.start_gpu_node()
        scenarios(cluster, client, report, save, mark, url)
        report["gpu_node_start_rc"] = joining.wait(60)
    except Exception:
        report["errors"].append(traceback.format_exc())
    finally:
        for name in ("scheduler-1.log", "scheduler-2.log", "api.log"):
            report.setdefault("logs", {})[name] = cluster.tail(name)
        save()


def scenarios(
    cluster: Cluster,
    client: Any,
    report: dict[str, Any],
    save: Callable[[], None],
    mark: Callable[[str], None],
    url: str,
) -> None:
    from typer.testing import CliRunner

    from farm.cli.main import app
    from farm.contract import JobCreate, ManifestEntry
    from farm.domain.states import JOB_TERMINAL

    blend = b"BLENDER-v500 stand-in scene: the fault-script renderer does not read it"
    sha = hashlib.sha256(blend).hexdigest()
    path = cluster.work / "scene.blend"
    path.write_bytes(blend)
    client.upload_blob(path, sha, len(blend))
    token = client.token

    def submit(name: str, frames: str, chunk: int, **options: Any) -> str:
        spec = JobCreate(
            name=name,
            blend_file="scene.blend",
            manifest={"scene.blend": ManifestEntry(sha256=sha, size=len(blend))},
            frames=frames,
            chunk_size=chunk,
            **options,
        )
        return str(client.create_job(spec).id)

    def job(job_id: str) -> dict[str, Any]:
        return dict(client.job(job_id).model_dump(mode="json"))

    def finished(job_id: str, timeout: float = 90) -> dict[str, Any]:
        wait_for(f"job {job_id} to end", lambda: client.job(job_id).status in JOB_TERMINAL, timeout)
        return job(job_id)

    def tasks(job_id: str) -> list[dict[str, Any]]:
        return [t.model_dump(mode="json") for t in client.tasks(job_id).tasks]

    def frames(job_id: str) -> list[dict[str, Any]]:
        return [f.model_dump(mode="json") for f in client.frames(job_id).frames]

    def cli(*args: str) -> dict[str, Any]:
        result = CliRunner().invoke(app, list(args), env={"FARM_URL": url, "FARM_TOKEN": token})
        return {"exit_code": result.exit_code, "output": result.output}

    def stored(job_id: str) -> dict[str, Any]:
        """What the object store holds for the job: names, and whether each is a whole PNG matching its row."""
        rows = {f["name"]: f for f in frames(job_id)}
        files = sorted(p for p in (cluster.data / "objects").rglob("*") if p.is_file() and job_id in p.parts)
        valid = all(
            p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            and hashlib.sha256(p.read_bytes()).hexdigest() == rows.get(p.name, {}).get("sha256")
            for p in files
        )
        return {"names": [p.name for p in files], "valid": valid}

    def running(job_id: str) -> bool:
        return any(t["status"] == "running" for t in tasks(job_id))

    only = set(filter(None, os.environ.get("SCENARIOS", "").split(",")))

    def wanted(name: str) -> bool:
        return not only or name in only

    # ---- 1. GPU placement: a GPU job only on the GPU slot, a CPU job never on it ----------------------------
    if wanted("placement"):
        gpu_job = submit("gpu", "1-8", 2, gpu=True, allow_cpu_fallback=False)
        cpu_job = submit("cpu", "11-18", 2)
        report["placement"] = {
            "gpu": {"job": finished(gpu_job, 120), "tasks": tasks(gpu_job), "frames": frames(gpu_job)},
            "cpu": {"job": finished(cpu_job), "tasks": tasks(cpu_job), "frames": frames(cpu_job)},
        }
        mark("placement")
        save()

    # ---- 2. a bad node: blocklisted after 3 failed chunks, the job completes elsewhere; unblock via the CLI ---
    if wanted("blocklist"):
        bad = submit("bad-node", "31-40", 1)
        report["blocklist"] = {
            "job": finished(bad),
            "tasks": tasks(bad),
            "frames": frames(bad),
            "api": client.blocklist(bad).model_dump(mode="json"),
            "cli": cli("blocklist", bad),
        }
        report["blocklist"]["unblock"] = cli("unblock", bad, "gpu-node")
        report["blocklist"]["after_unblock"] = client.blocklist(bad).model_dump(mode="json")
        mark("blocklist")
        save()

    # ---- 3. a frame that crashes Blender: retried, failed after 3 attempts, the job says why; then retry -----
    if wanted("crash"):
        crash = submit("crash", "51-54", 1, max_attempts=3, on_chunk_failure="continue")
        report["crash"] = {"job": finished(crash), "tasks": tasks(crash), "frames": frames(crash)}
        report["crash"]["status_cli"] = cli("status", crash)
        report["crash"]["logs_cli"] = cli("logs", crash)
        report["crash"]["retry_cli"] = cli("retry", crash)
        wait_for(
            "retried crash job to settle",
            lambda: client.job(crash).status in JOB_TERMINAL or client.job(crash).status_reason.startswith("waiting"),
            60,
            0.2,
        )
        report["crash"]["after_retry"] = {"job": job(crash), "tasks": tasks(crash)}
        failjob = submit("fail-job", "51-58", 1, max_attempts=1, on_chunk_failure="fail-job")
        failed_job = finished(failjob)
        # The job fails at once; the chunks it had running are stopped right after.
        wait_for(
            "fail-job chunks stopped",
            lambda: not any(t["status"] in ("dispatched", "running") for t in tasks(failjob)),
            10,
        )
        report["crash"]["fail_job"] = {"job": failed_job, "tasks": tasks(failjob)}
        mark("crash")
        save()

    # ---- 4. leases: a hung frame is killed when its lease expires and retried; cancel inside a long frame ----
    if wanted("lease"):
        hung = submit("hang", "61", 1, max_attempts=2)
        stuck = submit("stuck", "62", 1)
        wait_for("stuck chunk running", lambda: running(stuck), 30)
        time.sleep(0.3)
        t0 = time.monotonic()
        client.cancel(stuck)
        wait_for("stuck job canceled", lambda: client.job(stuck).status.value == "canceled", 10, 0.02)
        report["cancel"] = {"seconds": time.monotonic() - t0, "job": job(stuck), "tasks": tasks(stuck)}
        report["lease"] = {"job": finished(hung, 60), "tasks": tasks(hung)}
        mark("lease")
        save()

    # ---- 5. pause (running chunks finish), pause --now (they stop), resume ----------------------------------
    if wanted("pause"):
        soft = submit("pause", "71-78", 2)
        wait_for("pause job running", lambda: running(soft), 30, 0.02)
        paused = cli("pause", soft)
        status_after_call = job(soft)["status"]
        wait_for("pause job paused", lambda: client.job(soft).status.value == "paused", 20)
        at_pause = {"job": job(soft), "tasks": tasks(soft)}
        resumed = cli("resume", soft)
        report["pause"] = {
            "cli": paused,
            "status_after_call": status_after_call,
            "at_pause": at_pause,
            "resume_cli": resumed,
            "end": {"job": finished(soft), "tasks": tasks(soft), "frames": frames(soft)},
        }
        hard = submit("pause-now", "79-86", 4)
        wait_for("pause-now job running", lambda: running(hard), 30, 0.02)
        time.sleep(0.5)
        t0 = time.monotonic()
        report["pause_now"] = {"cli": cli("pause", hard, "--now")}
        save()
        wait_for("pause-now job paused", lambda: client.job(hard).status.value == "paused", 20, 0.02)
        report["pause_now"]["seconds"] = time.monotonic() - t0
        report["pause_now"]["at_pause"] = {"job": job(hard), "tasks": tasks(hard)}
        client.resume(hard)
        report["pause_now"]["end"] = {
            "job": finished(hard),
            "tasks": tasks(hard),
            "frames": frames(hard),
            "stored": stored(hard),
        }
        mark("pause")
        save()

    # ---- 6. kill -9 of the scheduler mid-job, start it again ----------------------------------------------
    if wanted("restart"):
        long = submit("restart", "101-160", 4)
        wait_for(
            "3 chunks done before the kill",
            lambda: sum(t["status"] == "completed" for t in tasks(long)) >= 3 and running(long),
            60,
            0.02,
        )
        cluster.kill_scheduler()
        before = tasks(long)
        cluster.start_scheduler()
        end = finished(long, 120)
        report["restart"] = {
            "before": before,
            "end": {"job": end, "tasks": tasks(long), "frames": frames(long), "stored": stored(long)},
        }
        mark("restart")
        save()

    # ---- 7. the GPU node dies mid-job: CPU fallback when allowed; a job without it waits, saying why ---------
    if wanted("node_loss"):
        lost = submit("node-loss", "201-230", 2, gpu=True, allow_cpu_fallback=True)
        wait_for("2 GPU chunks done", lambda: sum(t["status"] == "completed" for t in tasks(lost)) >= 2, 60, 0.02)
        report["node_loss"] = {"killed_processes": cluster.kill_gpu_node(), "before": tasks(lost)}
        end = finished(lost, 120)
        report["node_loss"]["end"] = {"job": end, "tasks": tasks(lost), "frames": frames(lost), "stored": stored(lost)}
        strict = submit("gpu-only", "301-302", 1, gpu=True, allow_cpu_fallback=False)
        wait_for("gpu-only job explains why it waits", lambda: "GPU" in client.job(strict).status_reason, 20, 0.2)
        report["node_loss"]["waiting"] = job(strict)
        client.cancel(strict)
        report["node_loss"]["waiting_canceled"] = finished(strict, 10)
        mark("node_loss")
        save()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
