"""Issue 15: render nodes hold no store key. Each assignment's grant (presigned GETs for its inputs, a signed POST
policy for its job's outputs) reaches that job's objects only, and lapses.

The S3 server is moto behind ``SigV4Gate``, which checks signatures as S3 and MinIO do (moto checks none).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3

from farm.domain.attempts import Assignment, Fault, Outcome, StoreGrant
from farm.errors import ObjectMissing, StorageError
from storage.base import blob_key, output_key
from storage.grants import GrantedStore, GrantIssuer, outputs_prefix, scrubbed_environ, secrets_withheld
from storage.s3 import S3Store
from tests.assets.sigv4_gate import SigV4Gate
from tests.s3_server import S3ServerProcess
from workers.actor import RenderWorker, WorkerConfig
from workers.cache import BlobCache, sha256_file

HTTP = urllib3.PoolManager(retries=False)


@pytest.fixture(scope="module")
def gate(s3_server: S3ServerProcess) -> Iterator[SigV4Gate]:
    with SigV4Gate(s3_server.endpoint, s3_server.secret_key) as gate:
        yield gate


@pytest.fixture()
def store(gate: SigV4Gate, s3_server: S3ServerProcess) -> Iterator[S3Store]:
    """The keyed store (what the scheduler holds), reached through the gate."""
    keyed = S3Store(gate.endpoint, s3_server.access_key, s3_server.secret_key, f"grants-{uuid.uuid4().hex[:12]}")
    yield keyed
    keyed.close()


def put_blob(store: S3Store, company: str, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    store.put_stream(blob_key(company, sha), io.BytesIO(data), len(data))
    return sha


def read(store: S3Store, key: str) -> bytes:
    return b"".join(store.open(key))


def test_a_grant_reads_the_jobs_inputs_and_writes_its_outputs(store: S3Store, gate: SigV4Gate, tmp_path: Path) -> None:
    data = b"scene bytes " * 1000
    sha = put_blob(store, "studio-a", data)
    grant = GrantIssuer(store)("studio-a", "job-1", {"scene.blend": {"sha256": sha, "size": len(data)}}, 4)
    granted = GrantedStore(grant)

    cache = BlobCache(tmp_path / "cache", 10**9)
    cached = cache.ensure(granted, "studio-a", sha)  # fetched over the presigned URL, sha256 verified
    assert cached.read_bytes() == data

    frame = tmp_path / "frame.png"
    frame.write_bytes(bytes(range(256)) * 4096)  # 1 MiB: several reads of the streamed form body
    key = output_key("studio-a", "job-1", "render/shot_0001.png")
    granted.put_file(key, frame)
    assert hashlib.sha256(read(store, key)).hexdigest() == sha256_file(frame)
    assert {(seen.auth, seen.status) for seen in gate.log if seen.key == key} == {("policy", 204)}
    assert {(seen.auth, seen.status) for seen in gate.log if seen.path.endswith(sha)} >= {("presigned", 200)}


def test_a_grant_reaches_only_its_own_jobs_objects(store: S3Store, tmp_path: Path) -> None:
    mine = put_blob(store, "studio-a", b"a's texture")
    theirs = put_blob(store, "studio-b", b"b's secret texture")
    other_job_key = output_key("studio-a", "job-2", "frame_000001.png")
    store.put_stream(other_job_key, io.BytesIO(b"job 2's frame"), 13)
    grant = GrantIssuer(store)("studio-a", "job-1", {"t.png": {"sha256": mine, "size": 11}}, 2)
    granted = GrantedStore(grant)

    # The worker refuses what the grant does not name before asking...
    with pytest.raises(StorageError, match="not granted"):
        granted.get_file(blob_key("studio-b", theirs), tmp_path / "x")
    with pytest.raises(StorageError, match="not granted"):
        granted.put_file(other_job_key, _file(tmp_path / "evil", b"overwrite"))
    for refused in (granted.delete, granted.stat):
        with pytest.raises(StorageError, match="not granted"):
            refused(other_job_key)

    # ...and the server refuses a URL bent towards another key: the signature covers the key.
    url = grant.inputs[blob_key("studio-a", mine)]
    bent = url.replace(f"/blobs/studio-a/{mine}?", f"/blobs/studio-b/{theirs}?")
    assert bent != url
    response = HTTP.request("GET", bent)
    assert response.status == 403 and b"SignatureDoesNotMatch" in response.data
    assert HTTP.request("GET", url).data == b"a's texture"  # the unbent URL works
    assert HTTP.request("GET", url.split("?")[0]).status == 403  # no signature, no access

    # The upload policy covers the job's outputs prefix only; nothing lands elsewhere.
    for key in (other_job_key, output_key("studio-b", "job-1", "x.png"), blob_key("studio-a", "0" * 64)):
        status, body = post_form(grant, key, b"overwrite")
        assert status == 403 and b"Policy Condition failed" in body, key
    assert read(store, other_job_key) == b"job 2's frame"
    assert store.stat(output_key("studio-b", "job-1", "x.png")) is None

    # A policy edited to widen the prefix loses its signature.
    policy = json.loads(base64.b64decode(grant.upload.fields["policy"]))
    for condition in policy["conditions"]:
        if isinstance(condition, list) and condition[0] == "starts-with":
            condition[2] = "outputs/"
    widened = {**grant.upload.fields, "policy": base64.b64encode(json.dumps(policy).encode()).decode()}
    status, body = post_form(grant, other_job_key, b"overwrite", fields=widened)
    assert status == 403 and b"SignatureDoesNotMatch" in body
    assert read(store, other_job_key) == b"job 2's frame"


def test_a_lapsed_grant_is_a_storage_fault_not_a_scene_fault(store: S3Store, tmp_path: Path) -> None:
    sha = put_blob(store, "studio-a", b"inputs")
    issuer = GrantIssuer(store, base_s=1, per_frame_s=0)
    grant = issuer("studio-a", "job-3", {"a.blend": {"sha256": sha, "size": 6}}, 1)
    assert grant.upload.expires_at - time.time() <= 2.5
    time.sleep(3.2)
    granted = GrantedStore(grant, retries=0)
    with pytest.raises(StorageError, match="403") as info:
        granted.get_file(blob_key("studio-a", sha), tmp_path / "x")
    assert not isinstance(info.value, ObjectMissing)  # a refused URL is not a missing input
    with pytest.raises(StorageError, match="403"):
        granted.put_file(output_key("studio-a", "job-3", "f.png"), _file(tmp_path / "f", b"late"))
    # A fresh grant is signed once the old one cannot cover a chunk any more.
    assert issuer("studio-a", "job-3", {"a.blend": {"sha256": sha, "size": 6}}, 1) is not grant


def test_grants_are_reused_across_a_jobs_chunks_while_they_cover_them(store: S3Store) -> None:
    sha = put_blob(store, "studio-a", b"x")
    issuer = GrantIssuer(store, base_s=600, per_frame_s=60)
    manifest = {"a.blend": {"sha256": sha, "size": 1}}
    first = issuer("studio-a", "job-4", manifest, 5)
    assert issuer("studio-a", "job-4", manifest, 5) is first
    assert issuer("studio-a", "job-5", manifest, 5) is not first
    assert first.upload.prefix == outputs_prefix("studio-a", "job-4") == "outputs/studio-a/job-4/"
    assert "X-Amz-Signature" not in repr(first) and "policy" not in repr(first)  # credentials stay out of logs


def test_a_worker_without_store_keys_renders_through_its_grant(store: S3Store, tmp_path: Path) -> None:
    blend = b"not really a blend: the sleep renderer only needs the file to exist"
    sha = put_blob(store, "studio-a", blend)
    worker = RenderWorker(
        WorkerConfig(
            name="keyless",
            store=None,  # no store of its own: everything through the assignment's grant
            cache_dir=str(tmp_path / "cache"),
            cache_bytes=10**9,
            work_dir=str(tmp_path / "work"),
            renderer="sleep:0.01",
            upload_retries=0,
        )
    )
    try:
        manifest = {"scene.blend": {"sha256": sha, "size": len(blend)}}
        issuer = GrantIssuer(store)

        def assignment(job: str, grant: StoreGrant | None, attempt: int = 1) -> Assignment:
            return Assignment(job, f"{job}-t1", attempt, "studio-a", "scene.blend", manifest, [1, 2], {}, grant)

        facts = worker.render(assignment("job-6", issuer("studio-a", "job-6", manifest, 2)))
        assert facts.outcome is Outcome.COMPLETED, facts.reason
        assert len(facts.frames) == 2
        for frame in facts.frames:
            assert frame.key.startswith("outputs/studio-a/job-6/")
            assert hashlib.sha256(read(store, frame.key)).hexdigest() == frame.sha256

        # No grant and no store: the chunk fails as a storage fault, never as the scene's.
        facts = worker.render(assignment("job-7", None))
        assert (facts.outcome, facts.fault) == (Outcome.FAILED, Fault.STORAGE)

        # A lapsed upload grant: the frames cannot be stored, a storage fault (the scheduler waits and re-signs).
        short = GrantIssuer(store, base_s=1, per_frame_s=0)("studio-a", "job-8", manifest, 1)
        worker.render(assignment("job-8", issuer("studio-a", "job-8", manifest, 2)))  # inputs now cached
        time.sleep(3.2)
        facts = worker.render(assignment("job-8", short, attempt=2))
        assert (facts.outcome, facts.fault) == (Outcome.FAILED, Fault.STORAGE), facts.reason
        assert "403" in facts.reason
    finally:
        worker.close()


def test_store_secrets_are_withheld_from_child_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import subprocess
    import sys

    monkeypatch.setenv("FARM_S3_SECRET_KEY", "very-secret")
    monkeypatch.setenv("FARM_S3_ACCESS_KEY", "very-access")
    with secrets_withheld():
        child = subprocess.run(
            [sys.executable, "-c", "import os; print(sorted(k for k in os.environ if 'S3' in k))"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "FARM_S3_SECRET_KEY" not in os.environ
    assert child.stdout.strip() == "[]"
    assert os.environ["FARM_S3_SECRET_KEY"] == "very-secret"  # the server itself keeps them
    assert "FARM_S3_SECRET_KEY" not in scrubbed_environ(dict(os.environ))


def _file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def post_form(grant: StoreGrant, key: str, data: bytes, fields: dict[str, str] | None = None) -> tuple[int, bytes]:
    form: dict[str, str | tuple[str, bytes]] = {**(fields or grant.upload.fields), "key": key}
    form["file"] = ("f.png", data)
    response = HTTP.request("POST", grant.upload.url, fields=form)
    return response.status, response.data


def test_many_presigned_urls_are_signed_as_the_server_checks_them(store: S3Store) -> None:
    keys = [
        blob_key("studio-a", put_blob(store, "studio-a", b"one")),
        output_key("studio-a", "job-9", "render/shot 1 ü+%.png"),  # a name that needs encoding
        output_key("studio-a", "job-9", "frame_000002.png"),
    ]
    for key in keys[1:]:
        store.put_stream(key, io.BytesIO(key.encode()), len(key.encode()))
    urls = store.presigned_get_urls(keys, 60)
    assert list(urls) == keys
    backwards = store.presigned_get_urls(keys[::-1], 60)  # the odd name signed by the SDK, the others here
    for key, url in [*urls.items(), *backwards.items()]:
        response = HTTP.request("GET", url)
        assert response.status == 200, (key, response.data)
        assert response.data == (b"one" if key.startswith("blobs/") else key.encode())
    assert "X-Amz-Signature" in urls[keys[2]] and urls[keys[1]] != urls[keys[2]]
