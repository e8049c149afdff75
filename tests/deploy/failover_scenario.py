"""Driver of the scheduler fail-over test; runs INSIDE ``unshare --net --pid --fork --mount-proc`` (root).

Only ``lo`` exists in there and every process dies with the namespace. It starts PostgreSQL, a Ray head, then two
API replicas and two ``farm scheduler`` processes *together* on the empty database (the first start must be
race-free), with the null renderer (``sleep:``). Then:

1. **kill -9**: a job is submitted; while its chunks render the leading scheduler is killed with SIGKILL; the
   standby must lead within 15 s and finish the job.
2. **SIGTERM**: a third scheduler stands by; the leader gets SIGTERM while it renders; it must stop dispatching at
   once, exit within 10 s, requeue its running chunk, and hand over without waiting out a lease.

It writes what it saw (attempt rows, ledger rows, timings, health answers) to a JSON report; the tests judge it.
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
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.db.postgres import PostgresServer  # noqa: E402

BIN = Path(sys.executable).parent
RAY_PORT = 6395
API_PORTS = (8390, 8391)
HEALTH_PORTS = (8401, 8402, 8403)
ADMIN_TOKEN = "farm_failover-admin-token-for-tests"  # noqa: S105 - a test's token
FRAME_S = 0.3
#: What a racy first start leaves in a log (a duplicate default company or admin token, a migration run twice).
CRASH_WORDS = ("UniqueViolation", "IntegrityError", "DuplicateTable", "farm/runtime/bootstrap.py")


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise TimeoutError(f"{what}: not after {timeout}s (last: {last!r})")


def health(port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:  # noqa: S310
            body: dict[str, Any] = json.loads(answer.read())
            body["http"] = answer.status
            return body
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read())
        body["http"] = exc.code
        return body


class Farm:
    def __init__(self, work: Path, db_url: str) -> None:
        self.work = work
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "FARM_"))}
        self.env.update(
            RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="1",
            RAY_AUTH_MODE="disabled",
            RAY_USAGE_STATS_ENABLED="0",
            FARM_MODE="cluster",
            FARM_SECRET_KEY="failover-test-secret",
            FARM_DATABASE_URL=db_url,
            FARM_DATA_DIR=str(work / "data"),
            FARM_RENDERER=f"sleep:{FRAME_S}",
            FARM_BOOTSTRAP_ADMIN_TOKEN=ADMIN_TOKEN,
            XDG_CONFIG_HOME=str(work / "xdg-config"),
            XDG_CACHE_HOME=str(work / "xdg-cache"),
            PYTHONPATH=str(REPO),
        )
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, args: list[str], **env: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            args,
            env={**self.env, **env},
            stdout=(self.logs / f"{name}.log").open("ab"),
            stderr=subprocess.STDOUT,
            cwd=str(self.work),
        )
        self.procs[name] = proc
        return proc

    def ray_head(self) -> None:
        head = self.start(
            "ray-head",
            [
                str(BIN / "ray"),
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
                "--object-store-memory",
                "80000000",
                "--disable-usage-stats",
                "--temp-dir",
                str(self.work / "ray"),
            ],
        )
        if head.wait(120) != 0:
            raise RuntimeError(f"ray head did not start:\n{self.tail('ray-head')}")

    def scheduler(self, name: str, health_port: int) -> subprocess.Popen[bytes]:
        return self.start(
            name,
            [str(BIN / "farm"), "scheduler", "--ray-address", f"127.0.0.1:{RAY_PORT}"],
            FARM_SCHEDULER_HEALTH_PORT=str(health_port),
        )

    def api(self, name: str, port: int) -> subprocess.Popen[bytes]:
        return self.start(name, [str(BIN / "farm"), "api", "--port", str(port)])

    def tail(self, name: str, lines: int = 80) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def leader_port(ports: tuple[int, ...]) -> int | None:
    for port in ports:
        try:
            if health(port).get("role") == "leader":
                return port
        except OSError:
            continue
    return None


def main(report_path: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="ffo-", dir="/tmp"))  # short: Ray's socket paths have a length limit
    report: dict[str, Any] = {"work": str(work), "errors": [], "timings": {}}
    started = time.monotonic()
    server = PostgresServer().start()
    farm = Farm(work, server.create_database())

    def save() -> None:
        report["timings"]["total"] = round(time.monotonic() - started, 1)
        report_path.write_text(json.dumps(report, indent=2, default=str))

    try:
        farm.ray_head()
        # First start on an empty database: two API replicas and two schedulers at once.
        names = {"api-0": API_PORTS[0], "api-1": API_PORTS[1]}
        for name, port in names.items():
            farm.api(name, port)
        by_port = {HEALTH_PORTS[0]: farm.scheduler("scheduler-a", HEALTH_PORTS[0])}
        by_port[HEALTH_PORTS[1]] = farm.scheduler("scheduler-b", HEALTH_PORTS[1])
        from farm.client import FarmClient

        clients = [FarmClient(f"http://127.0.0.1:{port}", ADMIN_TOKEN) for port in API_PORTS]
        for client in clients:
            wait_for("api", lambda c=client: c.jobs() is not None, 90)
        first = wait_for("a leader", lambda: leader_port(HEALTH_PORTS[:2]), 90)
        report["first_start"] = {
            name: proc.poll() for name, proc in farm.procs.items() if name.startswith(("api", "scheduler"))
        }
        scenarios(farm, clients, report, save, first, by_port)
    except Exception:
        report["errors"].append(traceback.format_exc())
    finally:
        report["logs"] = {name: farm.tail(name) for name in farm.procs if name != "ray-head"}
        report["crashes"] = {
            name: [w for w in CRASH_WORDS if w in (farm.logs / f"{name}.log").read_text(errors="replace")]
            for name in farm.procs
            if (farm.logs / f"{name}.log").exists()
        }
        save()
        for proc in farm.procs.values():
            if proc.poll() is None:
                proc.kill()
        server.stop()


def scenarios(
    farm: Farm,
    clients: list[Any],
    report: dict[str, Any],
    save: Callable[[], None],
    first: int,
    by_port: dict[int, subprocess.Popen[bytes]],
) -> None:
    from sqlalchemy import select

    from farm.contract import JobCreate, ManifestEntry
    from farm.db.engine import Database
    from farm.db.models import TaskAttempt, UsageEntry
    from farm.domain.states import JOB_TERMINAL

    client = clients[0]
    blend = b"BLENDER-v500 stand-in: the sleep renderer does not read it"
    sha = hashlib.sha256(blend).hexdigest()
    path = farm.work / "scene.blend"
    path.write_bytes(blend)
    client.upload_blob(path, sha, len(blend))
    db = Database(farm.env["FARM_DATABASE_URL"])

    def submit(name: str, frames: str) -> str:
        spec = JobCreate(
            name=name,
            blend_file="scene.blend",
            manifest={"scene.blend": ManifestEntry(sha256=sha, size=len(blend))},
            frames=frames,
            chunk_size=2,
        )
        return str(client.create_job(spec).id)

    def attempts(job_id: str) -> list[dict[str, Any]]:
        task_ids = {t.id for t in client.tasks(job_id).tasks}
        with db.session() as s:
            rows = s.scalars(select(TaskAttempt).where(TaskAttempt.task_id.in_(task_ids)))
            return [
                {
                    "task": a.task_id,
                    "number": a.number,
                    "status": a.status,
                    "started": a.started_at.timestamp(),
                    "ended": a.ended_at.timestamp() if a.ended_at else None,
                    "reason": a.reason,
                }
                for a in rows
            ]

    def ledger(job_id: str) -> list[dict[str, Any]]:
        with db.session() as s:
            rows = s.scalars(select(UsageEntry).where(UsageEntry.job_id == job_id))
            return [{"task": u.task_id, "attempt": u.attempt, "outcome": u.outcome} for u in rows]

    def outcome(job_id: str) -> dict[str, Any]:
        wait_for(f"job {job_id} to end", lambda: client.job(job_id).status in JOB_TERMINAL, 120)
        return {
            "status": client.job(job_id).status,
            "frames": sorted(f.frame for f in client.frames(job_id).frames),
            "frames_via_1": sorted(f.frame for f in clients[1].frames(job_id).frames),
            "attempts": attempts(job_id),
            "ledger": ledger(job_id),
        }

    def completed_attempts(job_id: str) -> int:
        return sum(1 for a in attempts(job_id) if a["status"] == "completed")

    def running(job_id: str) -> bool:
        return any(a["status"] in ("dispatched", "running") and a["ended"] is None for a in attempts(job_id))

    # ---- 1. kill -9 the leader mid-job: the standby takes over and finishes ---------------------------------
    job = submit("failover", "1-24")
    wait_for("three chunks done and one rendering", lambda: completed_attempts(job) >= 3 and running(job), 60)
    standby = next(port for port in by_port if port != first)
    report["kill"] = {"standby_before": health(standby)}
    killed_at = time.time()
    by_port[first].send_signal(signal.SIGKILL)
    by_port[first].wait(10)
    took = wait_for("the standby to lead", lambda: health(standby).get("role") == "leader", 40)
    report["kill"]["took_over_s"] = round(time.time() - killed_at, 2) if took else None
    report["kill"]["killed_at"] = killed_at
    report["kill"]["job"] = outcome(job)
    save()

    # ---- 2. SIGTERM the leader mid-job: it stops at once, requeues, hands over to the next standby ---------
    third = HEALTH_PORTS[2]
    by_port[third] = farm.scheduler("scheduler-c", third)
    wait_for("a third scheduler standing by", lambda: health(third).get("role") == "standby", 90)
    job2 = submit("sigterm", "101-124")
    wait_for("two chunks done and one rendering", lambda: completed_attempts(job2) >= 2 and running(job2), 60)
    term_at = time.time()
    by_port[standby].send_signal(signal.SIGTERM)
    rc = by_port[standby].wait(30)
    exited = time.time()
    report["term"] = {"term_at": term_at, "exit_s": round(exited - term_at, 2), "rc": rc}
    wait_for("the third scheduler to lead", lambda: health(third).get("role") == "leader", 40)
    report["term"]["third_leads_at"] = time.time()
    report["term"]["job"] = outcome(job2)
    # The log of the scheduler that got the SIGTERM: whichever of a and b did not lead first.
    term_name = "scheduler-a" if standby == HEALTH_PORTS[0] else "scheduler-b"
    report["term"]["log_tail"] = farm.tail(term_name, 15)
    save()
    db.dispose()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
