"""Issue 15, end to end: an embedded farm in S3 mode renders a real Blender job while its render workers hold no
store key. The farm runs in a child process (Ray is one per process); the S3 server is moto behind ``SigV4Gate``,
which checks the presigned URLs' and upload policies' signatures as S3 does.

Checked: every frame is stored with its reported sha256 through the job's upload policy (never with the keys),
and no process the farm started (Ray's, the worker actors, their Blender children) has the secret in its
environment, while the farm server itself, which signs the grants, still has it.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from farm.client import FarmClient
from farm.runtime.embedded import free_port
from storage.s3 import S3Store
from tests.assets.sigv4_gate import SigV4Gate
from tests.s3_server import S3ServerProcess

BUCKET = "farm-keyless"
FRAMES = 4


@dataclass
class KeylessFarm:
    url: str
    token: str
    pid: int
    secret: str
    gate: SigV4Gate
    store: S3Store


@pytest.fixture(scope="module")
def keyless_farm(s3_server: S3ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeylessFarm]:
    base = tmp_path_factory.mktemp("keyless-farm")
    with SigV4Gate(s3_server.endpoint, s3_server.secret_key) as gate:
        port = free_port()
        env = dict(os.environ)
        env.update(
            FARM_STORAGE="s3",
            FARM_S3_ENDPOINT=gate.endpoint,
            FARM_S3_ACCESS_KEY=s3_server.access_key,
            FARM_S3_SECRET_KEY=s3_server.secret_key,
            FARM_S3_BUCKET=BUCKET,
            FARM_WRITE_CLI_CONFIG="false",
            XDG_CONFIG_HOME=str(base / "config"),
            XDG_CACHE_HOME=str(base / "cache"),
        )
        log = base / "farm.log"
        farm_cli = Path(sys.executable).with_name("farm")
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(farm_cli), "server", "--data-dir", str(base / "data"), "--port", str(port), "--slots", "1"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        url = f"http://127.0.0.1:{port}"
        store = S3Store(gate.endpoint, s3_server.access_key, s3_server.secret_key, BUCKET)
        try:
            deadline = time.monotonic() + 180
            while True:
                assert proc.poll() is None, log.read_text()[-4000:]
                assert time.monotonic() < deadline, "the farm did not start:\n" + log.read_text()[-4000:]
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.3)
            token = (base / "data" / "admin.token").read_text().strip()
            yield KeylessFarm(url, token, proc.pid, s3_server.secret_key, gate, store)
        finally:
            store.close()
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def descendants(root: int) -> list[int]:
    """Every live process below ``root`` (from /proc: parent ids)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def process_facts(pid: int) -> tuple[str, bytes] | None:
    """(command line, raw environment) of a process, or None when it is gone."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        return cmdline, Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None


def test_render_nodes_hold_no_store_secret(keyless_farm: KeylessFarm, sample_blend: Path) -> None:
    farm = keyless_farm
    with FarmClient(farm.url, farm.token) as client:
        job_id = client.submit(sample_blend, f"1-{FRAMES}", chunk_size=2, samples=1).job.id
        deadline = time.monotonic() + 240
        job = client.job(job_id)
        while job.status.value not in ("completed", "failed", "canceled"):
            assert time.monotonic() < deadline, client.logs(job_id)
            time.sleep(0.3)
            job = client.job(job_id)
        assert job.status.value == "completed", client.logs(job_id)
        frames = client.frames(job_id).frames
        assert len(frames) == FRAMES

    # Every frame's bytes are in the store, as reported, and were written with the job's upload policy.
    stored = {info.key for info in farm.store.list("outputs/") if f"/{job_id}/" in info.key}
    for frame in frames:
        (key,) = [k for k in stored if k.endswith(f"/{job_id}/{frame.name}")]
        assert hashlib.sha256(b"".join(farm.store.open(key))).hexdigest() == frame.sha256
        writes = {(s.method, s.auth, s.status) for s in farm.gate.log if s.key == key or s.path.endswith(key)}
        assert ("POST", "policy", 204) in writes, writes
        assert not any(method in ("PUT", "POST") and auth == "keyed" for method, auth, _ in writes), writes
    assert any(s.auth == "presigned" and "/blobs/" in s.path and s.status == 200 for s in farm.gate.log)

    # No process the farm started holds the secret; the Blender child and the worker actor are among them.
    secret = farm.secret.encode()
    server = process_facts(farm.pid)
    assert server is not None and secret in server[1]  # the signer keeps it: the test would see a leak
    seen = []
    for pid in descendants(farm.pid):
        facts = process_facts(pid)
        if facts is None:
            continue
        cmdline, environ = facts
        seen.append(cmdline)
        assert secret not in environ, f"store secret in the environment of {pid}: {cmdline[:200]}"
        assert b"FARM_S3_SECRET_KEY" not in environ and b"FARM_S3_ACCESS_KEY" not in environ, cmdline[:200]
    assert any("RenderWorker" in c for c in seen), seen
    assert any("workers.blender_child" in c for c in seen), seen
