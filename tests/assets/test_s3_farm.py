"""A whole farm in S3 mode, in a child process (Ray is one per process and the session farm owns this one's).

Submits through ``farm.client`` (presigned uploads), stops the S3 server for a few seconds mid-job (the API
answers 503 with a message meanwhile, workers retry their uploads with backoff), and checks that every frame
lands in the bucket, downloads go through presigned URLs with verified hashes, the preview is stored and the
storage bytes reach the usage report.
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
from tests.s3_server import S3ServerProcess

BUCKET = "farm-s3-mode"
FRAMES = 12


@dataclass
class S3Farm:
    url: str
    token: str
    s3: S3ServerProcess
    store: S3Store
    log: Path


@pytest.fixture(scope="module")
def s3_farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Farm]:
    base = tmp_path_factory.mktemp("s3-farm")
    server = S3ServerProcess(log_dir=base)
    server.start()
    port = free_port()
    env = dict(os.environ)
    env.update(
        FARM_STORAGE="s3",
        FARM_S3_ENDPOINT=server.endpoint,
        FARM_S3_ACCESS_KEY=server.access_key,
        FARM_S3_SECRET_KEY=server.secret_key,
        FARM_S3_BUCKET=BUCKET,
        FARM_RENDERER="sleep:0.4",
        FARM_STORAGE_SAMPLE_INTERVAL_S="1",
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
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, log.read_text()[-4000:]
            assert time.monotonic() < deadline, "the S3-mode farm did not start:\n" + log.read_text()[-4000:]
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        token = (base / "data" / "admin.token").read_text().strip()
        store = S3Store(server.endpoint, server.access_key, server.secret_key, BUCKET, retries=8, backoff_s=0.2)
        yield S3Farm(url, token, server, store, log)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        server.close()


def test_s3_mode_survives_an_outage_and_delivers_every_frame(
    s3_farm: S3Farm, sample_blend: Path, tmp_path: Path
) -> None:
    with FarmClient(s3_farm.url, s3_farm.token) as client:
        result = client.submit(sample_blend, f"1-{FRAMES}", chunk_size=3, samples=1)
        job_id = result.job.id
        keys = {info.key for info in s3_farm.store.list("")}
        assert result.uploaded_files >= 2 and any(k.startswith("blobs/") for k in keys)
        assert not any(k.startswith("uploads/") for k in keys)  # direct uploads were committed and cleaned

        deadline = time.monotonic() + 60
        while client.job(job_id).frames_done < 1:
            assert time.monotonic() < deadline, "no frame arrived"
            time.sleep(0.1)

        s3_farm.s3.stop()  # the S3 server dies mid-job; its data survives
        stopped = time.monotonic()
        try:
            data = b"uploaded during the outage"
            response = httpx.put(
                f"{s3_farm.url}/api/v1/blobs/{hashlib.sha256(data).hexdigest()}",
                content=data,
                headers={"Authorization": f"Bearer {s3_farm.token}"},
                timeout=60,
            )
            assert response.status_code == 503, response.text
            assert "S3" in response.json()["detail"]
            time.sleep(max(0.0, 3.0 - (time.monotonic() - stopped)))
        finally:
            s3_farm.s3.start()

        deadline = time.monotonic() + 120
        job = client.job(job_id)
        while job.status.value not in ("completed", "failed", "canceled"):
            assert time.monotonic() < deadline, client.logs(job_id)
            time.sleep(0.2)
            job = client.job(job_id)
        assert job.status.value == "completed", client.logs(job_id)
        assert job.frames_done == FRAMES

        frames = client.frames(job_id).frames
        outputs = {info.key for info in s3_farm.store.list("outputs/")}
        assert all(any(k.endswith(f"/{job_id}/{f.name}") for k in outputs) for f in frames)
        assert len(frames) == FRAMES

        # Downloads are redirected to short-lived presigned URLs on the S3 server, and hashes are checked.
        raw = client.http.get(f"/api/v1/jobs/{job_id}/frames/1", follow_redirects=False)
        assert raw.status_code == 307
        assert raw.headers["location"].startswith(f"http://{s3_farm.s3.endpoint}/{BUCKET}/outputs/")
        assert "X-Amz-Signature" in raw.headers["location"]
        assert client.download(job_id, tmp_path / "frames") == (FRAMES, 0)
        assert client.download(job_id, tmp_path / "frames") == (0, FRAMES)  # resumable: present files skipped

        deadline = time.monotonic() + 60
        while not any(k.endswith(f"/{job_id}/preview.mp4") for k in (i.key for i in s3_farm.store.list("outputs/"))):
            assert time.monotonic() < deadline, "no preview.mp4 in the bucket"
            time.sleep(0.3)

        deadline = time.monotonic() + 30
        while not [r for r in client.usage().totals if r.resource == "storage" and r.hours > 0]:
            assert time.monotonic() < deadline, "no storage rows in the usage report"
            time.sleep(0.3)
