"""Every frame is the right frame: attacks on the session's embedded farm (real Ray, real Blender, one slot).

Each test ends by comparing stored frames with a clean render of the same frames on the same farm, by pixels
(``pixels.pixel_digest``: Blender writes render timings into every file, so file bytes differ between renders),
and checks that every frame is stored exactly once with a row whose sha256 is the stored bytes' hash.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest
import ray

from farm.client import FarmClient
from farm.client.admin import AdminClient
from farm.contract import CompanyCreate, JobCreate, ManifestEntry, Role, TokenCreate
from farm.domain.states import JOB_TERMINAL
from farm.errors import StorageError
from tests.reliability.pixels import pixel_digest
from tests.reliability.scene_variants import build
from workers.renderer import BlenderRenderer, ChunkSpec, FrameDone

pytestmark = [pytest.mark.ray, pytest.mark.blender]

SLOW = {"resolution": "160x160", "samples": 48}  # a frame long enough (~0.3 s here) to be hit mid-render


def wait_job(client: FarmClient, job_id: str, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    job = client.job(job_id)
    while job.status not in JOB_TERMINAL and time.monotonic() < deadline:
        time.sleep(0.1)
        job = client.job(job_id)
    assert job.status in JOB_TERMINAL, f"job {job_id} still {job.status.value}: {job.status_reason}"
    return job


def stored_pixels(farm, client: FarmClient, job_id: str, frames: list[int]) -> dict[int, str]:
    """Pixel digests of the job's stored frames, after checking each is stored exactly once and its row's size
    and sha256 are the stored bytes'."""
    rows = {f.frame: f for f in client.frames(job_id).frames}
    assert sorted(rows) == frames
    keys = [info.key for info in farm.store.list("outputs/") if f"/{job_id}/" in info.key]
    frame_keys = sorted(k for k in keys if k.rsplit("/", 1)[-1].startswith("frame_"))
    assert len(frame_keys) == len(frames), frame_keys  # exactly once: no duplicates, no leftovers
    by_name = {k.rsplit("/", 1)[-1]: k for k in frame_keys}
    digests = {}
    for frame, row in rows.items():
        data = b"".join(farm.store.open(by_name[row.name]))
        assert (len(data), hashlib.sha256(data).hexdigest()) == (row.size, row.sha256)
        digests[frame] = pixel_digest(data)
    return digests


@pytest.fixture(scope="module")
def clean(farm, sample_blend) -> dict[tuple[str, int], str]:
    """Clean renders of the sample: frames 1-6 at the sample's settings and at the slow settings."""
    with FarmClient(farm.url, farm.admin_token) as client:
        return _clean(farm, client, sample_blend)


def _clean(farm, client: FarmClient, sample_blend: Path) -> dict[tuple[str, int], str]:
    small = client.submit(sample_blend, "1-6", name="clean", chunk_size=6).job
    slow = client.submit(sample_blend, "1-6", name="clean-slow", chunk_size=6, **SLOW).job
    out: dict[tuple[str, int], str] = {}
    for kind, job in (("small", small), ("slow", slow)):
        done = wait_job(client, job.id)
        assert done.status.value == "completed", done.status_reason
        for frame, digest in stored_pixels(farm, client, job.id, list(range(1, 7))).items():
            out[(kind, frame)] = digest
    assert len({out[("small", f)] for f in range(1, 7)}) == 6  # the frames differ from each other
    return out


@pytest.fixture(scope="module")
def two_companies(farm):
    suffix = secrets.token_hex(3)
    tokens = {}
    with AdminClient(farm.url, farm.admin_token) as admin:
        for who in ("poisoner", "victim"):
            admin.create_company(CompanyCreate(name=f"{who}-{suffix}"))
            tokens[who] = admin.create_token(TokenCreate(company=f"{who}-{suffix}", role=Role.ARTIST)).token
    return tokens


def test_a_file_output_node_cannot_poison_another_companys_texture(farm, clean, sample_blend, two_companies, tmp_path):
    poison = build(sample_blend, tmp_path / "poison", "poison")
    texture = (sample_blend.parent / "textures" / "checker.png").read_bytes()
    sha = hashlib.sha256(texture).hexdigest()
    with FarmClient(farm.url, two_companies["poisoner"]) as a:
        job = a.submit(poison, "1-4", name="poison", chunk_size=2).job  # two chunks: the second reads the texture again
        done = wait_job(a, job.id)
        assert done.status.value == "completed", done.status_reason
        # Its own frames are right (the texture was restored between its chunks) ...
        assert stored_pixels(farm, a, job.id, [1, 2, 3, 4]) == {f: clean[("small", f)] for f in range(1, 5)}
        # ... and each attempt's log names what the render wrote into its inputs.
        logs = a.logs(job.id)
        assert "textures/checker.png" in logs and "textures/aImage.png" in logs and "discarded" in logs
    # Nothing the poisoner's render wrote reached the store, the node cache or anybody's job folder.
    for info in farm.store.list("blobs/"):
        if info.key.endswith(sha):
            assert hashlib.sha256(b"".join(farm.store.open(info.key))).hexdigest() == sha
    cached = farm.settings.cache_dir / sha[:2] / sha
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == sha
    with FarmClient(farm.url, two_companies["victim"]) as b:
        job = b.submit(sample_blend, "1-6", name="victim", chunk_size=3).job
        done = wait_job(b, job.id)
        assert done.status.value == "completed", done.status_reason
        assert stored_pixels(farm, b, job.id, list(range(1, 7))) == {f: clean[("small", f)] for f in range(1, 7)}


def _blender_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-f", "workers.blender_child"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _wait_frames(client: FarmClient, job_id: str, count: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while len(client.frames(job_id).frames) < count:
        assert time.monotonic() < deadline, f"fewer than {count} frames after {timeout}s"
        assert client.job(job_id).status not in JOB_TERMINAL, client.job(job_id).status_reason
        time.sleep(0.02)


def test_blender_killed_mid_frame_loses_nothing(farm, client, clean, sample_blend):
    job = client.submit(sample_blend, "1-6", name="kill-blender", chunk_size=6, **SLOW).job
    _wait_frames(client, job.id, 2)
    for pid in _blender_pids():
        os.kill(pid, signal.SIGKILL)
    done = wait_job(client, job.id)
    assert done.status.value == "completed", done.status_reason
    attempts = [a for t in client.tasks(job.id).tasks for a in t.attempts]
    assert attempts[0].status == "failed" and attempts[0].fault == "node" and "-9" in attempts[0].reason
    assert attempts[-1].status == "completed"
    assert stored_pixels(farm, client, job.id, list(range(1, 7))) == {f: clean[("slow", f)] for f in range(1, 7)}


def test_the_worker_actor_killed_mid_chunk_loses_nothing(farm, client, clean, sample_blend):
    job = client.submit(sample_blend, "1-6", name="kill-actor", chunk_size=6, **SLOW).job
    _wait_frames(client, job.id, 2)
    ray.kill(farm.pool.slots[0].actor)
    done = wait_job(client, job.id)
    assert done.status.value == "completed", done.status_reason
    attempts = [a for t in client.tasks(job.id).tasks for a in t.attempts]
    assert attempts[0].status == "failed" and "died" in attempts[0].reason
    assert stored_pixels(farm, client, job.id, list(range(1, 7))) == {f: clean[("slow", f)] for f in range(1, 7)}


def _job_of_blobs(client: FarmClient, files: dict[str, Path], blend: str, **options) -> str:
    manifest = dict(options.pop("extra_manifest", {}))
    for rel, path in files.items():
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if client.missing_blobs([digest]):
            client.upload_blob(path, digest, len(data))
        manifest[rel] = ManifestEntry(sha256=digest, size=len(data))
    spec = JobCreate(name=options.pop("name", "t"), blend_file=blend, manifest=manifest, **options)
    return client.create_job(spec).id


def test_scene_faults_fail_at_once_and_never_block_the_node(farm, client, sample_blend, tmp_path):
    nocamera = build(sample_blend, tmp_path / "nocamera", "nocamera")
    job_id = _job_of_blobs(client, {"scene.blend": nocamera}, "scene.blend", frames="1-6", chunk_size=2)
    done = wait_job(client, job_id)
    assert done.status.value == "failed"
    tasks = client.tasks(job_id).tasks
    assert [len(t.attempts) for t in tasks] == [1, 1, 1]  # not retried: another node would not help
    assert all(t.attempts[0].fault == "scene" and "no active camera" in t.attempts[0].reason for t in tasks)
    assert client.blocklist(job_id).nodes == []  # and the node is not to blame
    # The only node still renders the next job.
    ok = client.submit(sample_blend, "1", name="after-scene-fault").job
    assert wait_job(client, ok.id).status.value == "completed"


def test_a_scene_blender_cannot_read_fails_once_without_the_nodes_paths(farm, client, tmp_path):
    garbage = tmp_path / "broken.blend"
    garbage.write_bytes(b"BLENDER-v500" + secrets.token_bytes(4000))  # looks like a .blend to the API, not to Blender
    job_id = _job_of_blobs(client, {"scene.blend": garbage}, "scene.blend", frames="1", chunk_size=1)
    done = wait_job(client, job_id)
    assert done.status.value == "failed"
    [attempt] = client.tasks(job_id).tasks[0].attempts
    assert attempt.fault == "scene" and "cannot open" in attempt.reason, attempt.reason
    # Blender names the file by its full path; the studio sees the job folder, not this node's layout.
    assert "<job folder>" in attempt.reason or "scene.blend" in attempt.reason
    assert str(farm.settings.data_dir) not in attempt.reason and "/jobs/" not in attempt.reason, attempt.reason


def test_missing_inputs_fail_the_chunk_by_name_or_warn_when_allowed(farm, client, clean, sample_blend):
    # The texture is left out of the manifest: Blender opens the scene and cannot find it.
    job_id = _job_of_blobs(client, {"scene.blend": sample_blend}, "scene.blend", frames="1-2", chunk_size=2)
    done = wait_job(client, job_id)
    assert done.status.value == "failed"
    [task] = client.tasks(job_id).tasks
    [attempt] = task.attempts
    assert attempt.fault == "scene" and "missing inputs: textures/checker.png" in attempt.reason
    assert "--allow-missing" in attempt.reason
    allowed = _job_of_blobs(
        client, {"scene.blend": sample_blend}, "scene.blend", frames="1-2", chunk_size=2, allow_missing=True
    )
    done = wait_job(client, allowed)
    assert done.status.value == "completed", done.status_reason
    assert "missing inputs" in done.warning and "textures/checker.png" in done.warning
    assert "textures/checker.png" in client.tasks(allowed).tasks[0].attempts[0].warning
    # Rendered without its texture: not the clean frame (magenta), as the warning says.
    assert stored_pixels(farm, client, allowed, [1, 2])[1] != clean[("small", 1)]


def test_a_storage_error_mid_chunk_leaves_no_queued_work_in_blender(sample_blend, tmp_path):
    """The frame callback fails on the 2nd of 4 frames (a store that gave up): Blender still held 2 queued render
    commands. The next chunk must see only its own frames, written where it asked."""
    renderer = BlenderRenderer(tmp_path / "work")
    try:
        def spec(attempt: str, frames: list[int]) -> ChunkSpec:
            return ChunkSpec("job", sample_blend, frames, tmp_path / attempt, {"output_format": "PNG"}, attempt)

        def failing(done: FrameDone) -> None:
            if done.frame == 2:
                raise StorageError("the store is full")

        with pytest.raises(StorageError):
            renderer.render(spec("t1:1", [1, 2, 3, 4]), failing, lambda _f: None, lambda: False)
        seen: list[FrameDone] = []
        result = renderer.render(spec("t2:1", [5, 6]), seen.append, lambda _f: None, lambda: False)
        assert result.outcome == "completed", result.reason
        assert [(d.frame, d.path) for d in seen] == [(5, tmp_path / "t2:1" / "frame_000005.png"),
                                                      (6, tmp_path / "t2:1" / "frame_000006.png")]
    finally:
        renderer.close()


def test_a_deleted_stored_input_fails_the_chunk_with_what_to_do(farm, client, sample_blend, tmp_path):
    """The store lost a blob behind the farm's back (and the node cache is cold): the chunk fails at once, says
    which object and what to do, and blames no node."""
    data = os.urandom(64)
    extra = tmp_path / "extra.bin"
    extra.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    client.upload_blob(extra, digest, len(data))
    # Lost before the job is created (the API checks rows; the worker's fetch finds the object gone): deleting
    # after creating it would race the worker, which may have cached it already.
    for info in list(farm.store.list("blobs/")):
        if info.key.endswith(digest):
            farm.store.delete(info.key)
    job_id = _job_of_blobs(
        client, {"scene.blend": sample_blend, "textures/checker.png": sample_blend.parent / "textures" / "checker.png"},
        "scene.blend", frames="1", name="lost-blob",
        extra_manifest={"extra.bin": ManifestEntry(sha256=digest, size=len(data))},  # not asked about: still a row
    )
    done = wait_job(client, job_id)
    assert done.status.value == "failed"
    [attempt] = client.tasks(job_id).tasks[0].attempts
    assert attempt.fault == "scene" and "missing from the store" in attempt.reason and "submit" in attempt.reason
    assert client.blocklist(job_id).nodes == []


def test_a_finished_jobs_folder_is_removed_from_its_worker(farm, client, sample_blend):
    """Disk is bounded: once a job ends, the slot that rendered it removes its job folder (inputs and outputs)."""
    job = client.submit(sample_blend, "1-2", name="folder-goes").job
    done = wait_job(client, job.id)
    assert done.status.value == "completed", done.status_reason
    folders = farm.data_dir / "work"
    deadline = time.monotonic() + 30  # the scheduler tells the workers every few seconds
    while list(folders.glob(f"*/jobs/{job.id}")):
        assert time.monotonic() < deadline, f"the folder of {job.id} is still there"
        time.sleep(0.2)
