"""Driver of the production rehearsal; runs INSIDE ``unshare --net --pid --fork --mount-proc`` (root).

Only ``lo`` exists in there, and every process started here dies with the namespace. From the launch plan
(``plan.py``: the rendered chart's pods) it starts what the cluster would: PostgreSQL on the Service's port with
the role and password of the rendered Secret, an S3 server standing in for MinIO (bucket created as the chart's
bucket Job does), the release's pre-install hook Jobs, then every pod in its own mount and UTS namespace
(``pod.py``): the Ray head, two CPU worker pods, two API replicas and the scheduler with its raylet sidecar.
Service names resolve to 127.0.0.1 through this namespace's ``/etc/hosts``.

Then an artist's session: ``farm submit`` (a subprocess) of a real scene through API replica 0, ``--wait``;
the bucket listed through the S3 API; every frame fetched through both replicas and ``farm download`` through
replica 1. Then a restore: ``pg_dump``, a blob uploaded after it, the scheduler stopped, ``pg_restore``, and one
frame object removed as if the bucket backup were older; ``farm admin fsck --json`` must name both.
Everything seen goes into a JSON report (written after each step, so a failure still leaves the earlier ones).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.db.postgres import PostgresServer, find_bin  # noqa: E402
from tests.s3_server import S3ServerProcess  # noqa: E402

BIN = Path(sys.executable).parent
BASE_ENV = {
    # The image's environment (Dockerfile ENV) and PATH, with this checkout's virtualenv in place of /usr/local.
    "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin",
    "HOME": "/home/farm",
    "PYTHONUNBUFFERED": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
    "LANG": "C.UTF-8",
    # Test-size Ray knobs, none of them the farm's: multi-node on loopback, no auth token file, no telemetry.
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1",
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
}


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # the service may not be up yet
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise TimeoutError(f"{what}: not after {timeout}s (last: {last!r})")


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Rehearsal:
    def __init__(self, plan: dict[str, Any], work: Path) -> None:
        self.plan = plan
        self.work = work
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.pg: PostgresServer | None = None
        self.s3: S3ServerProcess | None = None

    # -- the cluster's services ------------------------------------------------------------------------------

    def resolve_service_names(self) -> None:
        hosts = self.work / "hosts"
        hosts.write_text("127.0.0.1 localhost\n" + "".join(f"127.0.0.1 {h}\n" for h in self.plan["hosts"]))
        subprocess.run(["mount", "--bind", str(hosts), "/etc/hosts"], check=True)

    def forward(self, name: str, listen: int, target: int) -> None:
        self.procs[name] = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "s3_server.py"), str(listen), str(target)],
            stdout=(self.work / f"{name}.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_for(f"{name} forwarder", lambda: listening(listen), 30)

    def start_postgresql(self, database_url: str) -> dict[str, str]:
        url = urlsplit(database_url.replace("postgresql+psycopg://", "postgresql://"))
        user, password, database = url.username or "", url.password or "", url.path.lstrip("/")
        self.pg = PostgresServer().start()
        self.pg._admin("postgres", f"CREATE ROLE \"{user}\" LOGIN PASSWORD '{password}'")
        self.pg._admin("postgres", f'CREATE DATABASE "{database}" OWNER "{user}"')
        self.forward("postgresql", url.port or 5432, self.pg.port)
        return {"user": user, "database": database}

    def start_s3(self, endpoint: str, access_key: str, secret_key: str, bucket: str) -> None:
        port = int(endpoint.rsplit(":", 1)[1])
        self.s3 = S3ServerProcess(port=port, access_key=access_key, secret_key=secret_key, log_dir=self.work)
        self.s3.start()
        self.bucket_client().make_bucket(bucket)  # what the chart's bucket Job does with `mc mb`

    def bucket_client(self) -> Any:
        from minio import Minio

        assert self.s3 is not None
        return Minio(self.s3.endpoint, self.s3.access_key, self.s3.secret_key, secure=False)

    # -- pods -----------------------------------------------------------------------------------------------

    def launch(self, pod: dict[str, Any]) -> subprocess.Popen[bytes]:
        root = self.work / "pods" / pod["name"]
        root.mkdir(parents=True, exist_ok=True)
        spec = root / "pod.json"
        spec.write_text(json.dumps({"pod": pod, "root": str(root), "base_env": BASE_ENV, "bin": str(BIN)}))
        proc = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--uts",
                "--propagation",
                "private",
                sys.executable,
                str(Path(__file__).parent / "pod.py"),
                str(spec),
            ],
            stdout=(root / "main.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[pod["name"]] = proc
        return proc

    def pods(self, prefix: str) -> list[dict[str, Any]]:
        return [p for p in self.plan["pods"] if p["name"].startswith(prefix)]

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        proc = self.procs[name]
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        return proc.returncode

    def log(self, name: str, chars: int = 4000) -> str:
        path = self.work / "pods" / name / "main.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def close(self) -> None:
        for name, proc in reversed(list(self.procs.items())):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL) if name in self.pod_names() else proc.kill()
                except ProcessLookupError:
                    pass
        if self.s3 is not None:
            self.s3.close()
        if self.pg is not None:
            self.pg.stop()

    def pod_names(self) -> set[str]:
        return {p["name"] for p in self.plan["pods"]} | {h["name"] for h in self.plan["hooks"]}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main(plan_path: Path, scene: Path, report_path: Path) -> None:
    plan = json.loads(plan_path.read_text())
    work = Path(tempfile.mkdtemp(prefix="farm-rehearsal-", dir="/var/tmp"))  # not under a pod's mount paths
    run = Rehearsal(plan, work)
    report: dict[str, Any] = {"work": str(work), "errors": [], "timings": {}, "logs": {}}
    started = time.monotonic()

    def save() -> None:
        report["timings"]["total"] = round(time.monotonic() - started, 1)
        report_path.write_text(json.dumps(report, indent=2, default=str))

    def mark(step: str) -> None:
        report["timings"][step] = round(time.monotonic() - started, 1)
        save()

    try:
        steps(run, plan, scene, work, report, mark)
    except Exception:
        report["errors"].append(traceback.format_exc())
    finally:
        for pod in plan["pods"] + plan["hooks"]:
            report["logs"][pod["name"]] = run.log(pod["name"])
        save()
        run.close()
        save()


def steps(
    run: Rehearsal, plan: dict[str, Any], scene: Path, work: Path, report: dict[str, Any], mark: Callable[[str], None]
) -> None:
    (api0, api1) = run.pods("farm-render-farm-api-")[:2]
    control = api0["main"]["env"]
    run.resolve_service_names()
    report["database"] = run.start_postgresql(control["FARM_DATABASE_URL"])
    bucket = control["FARM_S3_BUCKET"]
    run.start_s3(control["FARM_S3_ENDPOINT"], control["FARM_S3_ACCESS_KEY"], control["FARM_S3_SECRET_KEY"], bucket)
    report["env"] = {
        name: {
            k: v
            for k, v in p["main"]["env"].items()
            if k.startswith("FARM_") and "KEY" not in k and "TOKEN" not in k and "URL" not in k
        }
        for name, p in [(p["name"], p) for p in plan["pods"]]
    }
    mark("services")

    # `helm install`: pre-install hooks, then the release's objects (all pods at once), then post-install hooks
    # while those pods start; the API and scheduler must wait for the migration Job, not race it.
    report["hooks"] = {}

    def run_hooks(phase: str) -> None:
        for hook in plan["hooks"]:
            if phase in hook["hook"].split(","):
                rc = run.launch(hook).wait(180)
                report["hooks"][hook["name"]] = {"phase": phase, "rc": rc, "log": run.log(hook["name"])}

    run_hooks("pre-install")
    run.launch(run.pods("ray-head")[0])
    wait_for("ray head GCS", lambda: listening(6379), 90)
    for pod in run.pods("ray-cpu-"):
        run.launch(pod)
    for pod in (api0, api1):
        run.launch(pod)
    for pod in run.pods("farm-render-farm-scheduler-"):
        run.launch(pod)
    run_hooks("post-install")
    mark("hooks")
    ports = [int(p["main"]["argv"][p["main"]["argv"].index("--port") + 1]) for p in (api0, api1)]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    report["api_urls"] = urls

    import httpx

    for url in urls:
        wait_for(f"{url}/readyz", lambda url=url: httpx.get(f"{url}/readyz", timeout=5).status_code == 200, 150, 0.5)
    mark("pods")
    dead = {
        name: proc.returncode for name, proc in run.procs.items() if name in run.pod_names() and proc.poll() is not None
    }
    dead = {name: rc for name, rc in dead.items() if name not in report["hooks"]}
    if dead:
        raise RuntimeError(f"pods exited before the first job: {dead}")

    token = plan["secrets"]["farm-render-farm-credentials"]["bootstrap-admin-token"]
    cli_env = {k: v for k, v in os.environ.items() if not k.startswith(("FARM_", "RAY_"))} | {
        "FARM_URL": urls[0],
        "FARM_TOKEN": token,
        "XDG_CONFIG_HOME": str(work / "artist"),
        "XDG_CACHE_HOME": str(work / "artist"),
    }
    farm = str(BIN / "farm")
    submit = subprocess.run(
        [
            farm,
            "submit",
            str(scene),
            "--frames",
            "1-4",
            "--chunk",
            "2",
            "--resolution",
            "32x32",
            "--samples",
            "1",
            "--no-preview",
            "--wait",
            "--json",
        ],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    report["submit"] = {"rc": submit.returncode, "stdout": submit.stdout, "stderr": submit.stderr[-3000:]}
    mark("render")
    result = json.loads(submit.stdout.strip().splitlines()[-1])
    job_id = result["job_id"]
    headers = {"Authorization": f"Bearer {token}"}
    if submit.returncode != 0:
        job = httpx.get(f"{urls[0]}/api/v1/jobs/{job_id}", headers=headers, timeout=30).json()
        raise RuntimeError(f"job {job_id} ended {job['status']}: {job['status_reason']}")

    frames = httpx.get(f"{urls[0]}/api/v1/jobs/{job_id}/frames", headers=headers, timeout=30).json()["frames"]
    tasks = httpx.get(f"{urls[1]}/api/v1/jobs/{job_id}/tasks", headers=headers, timeout=30).json()["tasks"]
    report["job"] = httpx.get(f"{urls[1]}/api/v1/jobs/{job_id}", headers=headers, timeout=30).json()
    report["frames"] = frames
    report["attempt_nodes"] = sorted({a["node"] for t in tasks for a in t["attempts"]})

    s3 = run.bucket_client()
    objects = {o.object_name: o.size for o in s3.list_objects(bucket, recursive=True)}
    report["bucket"] = objects
    stored = {}
    for key in objects:
        if job_id in key:
            response = s3.get_object(bucket, key)
            try:
                stored[key.rsplit("/", 1)[-1]] = sha(response.read())
            finally:
                response.close()
                response.release_conn()
    report["bucket_frames"] = stored
    blob_keys = [k for k in objects if k.startswith("blobs/")]
    report["bucket_blob_hashes_ok"] = {}
    for key in blob_keys:
        response = s3.get_object(bucket, key)
        try:
            report["bucket_blob_hashes_ok"][key] = sha(response.read()) == key.rsplit("/", 1)[-1]
        finally:
            response.close()
            response.release_conn()

    downloads: dict[str, dict[str, str]] = {}
    for url in urls:
        for frame in frames:
            got = httpx.get(
                f"{url}/api/v1/jobs/{job_id}/frames/{frame['frame']}",
                headers=headers,
                timeout=30,
                follow_redirects=True,
            )
            got.raise_for_status()
            downloads.setdefault(url, {})[frame["name"]] = sha(got.content) + (
                ":png" if got.content[:8] == b"\x89PNG\r\n\x1a\n" else ""
            )
    report["downloads"] = downloads
    out = work / "downloaded"
    got = subprocess.run(
        [farm, "download", job_id, "--out", str(out)],
        env=cli_env | {"FARM_URL": urls[1]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    report["cli_download"] = {
        "rc": got.returncode,
        "output": (got.stdout + got.stderr)[-2000:],
        "files": {p.name: sha(p.read_bytes()) for p in sorted(out.rglob("*")) if p.is_file()},
    }
    report["worker_caches"] = {
        pod["name"]: sorted(
            p.name for p in (work / "pods" / pod["name"] / "volumes" / "asset-cache").rglob("*") if p.is_file()
        )
        for pod in run.pods("ray-cpu-")
    }
    mark("checks")

    restore(run, work, report, mark, cli_env, urls, token, bucket, job_id, frames)


def restore(
    run: Rehearsal,
    work: Path,
    report: dict[str, Any],
    mark: Callable[[str], None],
    cli_env: dict[str, str],
    urls: list[str],
    token: str,
    bucket: str,
    job_id: str,
    frames: list[dict[str, Any]],
) -> None:
    """Backup, more work, restore of the database and an older bucket; fsck must tell what differs."""
    assert run.pg is not None
    dump = run.pg.root / "farm.dump"  # the postgres user writes there
    database = report["database"]["database"]
    done = run.pg._run(
        find_bin("pg_dump") or "pg_dump",
        "-h",
        "127.0.0.1",
        "-p",
        str(run.pg.port),
        "-U",
        "postgres",
        "-Fc",
        "-f",
        str(dump),
        database,
    )
    assert done.returncode == 0, done.stderr
    # After the backup an artist uploads a blob the restored database will not know.
    from farm.client import FarmClient

    extra = work / "after-backup.bin"
    extra.write_bytes(os.urandom(4096) + b"uploaded after the backup")
    with FarmClient(urls[1], token) as client:
        client.upload_blob(extra, sha(extra.read_bytes()), extra.stat().st_size)
    # Restore as docs/operations.md says: writers stopped, then the dump back in place.
    for pod in run.pods("farm-render-farm-scheduler-"):
        report.setdefault("scheduler_stop_rc", []).append(run.stop(pod["name"]))
    done = run.pg._run(
        find_bin("pg_restore") or "pg_restore",
        "-h",
        "127.0.0.1",
        "-p",
        str(run.pg.port),
        "-U",
        "postgres",
        "--clean",
        "--if-exists",
        "--single-transaction",
        "-d",
        database,
        str(dump),
    )
    report["pg_restore"] = {"rc": done.returncode, "stderr": done.stderr[-2000:]}
    # ... and the bucket from a backup taken before the job's last frame was written.
    s3 = run.bucket_client()
    last = max(frames, key=lambda f: f["frame"])
    (lost_key,) = [
        o.object_name
        for o in s3.list_objects(bucket, recursive=True)
        if job_id in o.object_name and o.object_name.endswith("/" + last["name"])
    ]
    s3.remove_object(bucket, lost_key)
    fsck = subprocess.run(
        [str(BIN / "farm"), "admin", "fsck", "--json"], env=cli_env, capture_output=True, text=True, timeout=120
    )
    report["restore"] = {
        "extra_blob": sha(extra.read_bytes()),
        "lost_frame": last["frame"],
        "lost_key": lost_key,
        "fsck_rc": fsck.returncode,
        "fsck": json.loads(fsck.stdout) if fsck.returncode == 0 else fsck.stdout + fsck.stderr,
    }
    mark("restore")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
