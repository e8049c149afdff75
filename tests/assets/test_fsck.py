"""The database and the object store agree: ``blobs/missing`` trusts no row whose object is gone, uploads
re-store a lost object, and ``farm admin fsck`` finds (and with ``--repair`` fixes) each kind of disagreement.

Objects are deleted or overwritten behind the farm's back, straight in the store, on both backends (a directory
and a real S3 server), and then on the session's embedded farm with a real render.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select
from typer.testing import CliRunner

from farm.cli.fsck import frame_ranges
from farm.cli.main import app
from farm.clock import SystemClock
from farm.contract import Role, TokenCreate
from farm.db.engine import Database
from farm.db.models import Blob, Company, Frame, Job
from farm.services import fsck
from farm.services.auth import DEFAULT_COMPANY
from farm.services.blobs import new_upload_id, upload_key
from storage.base import ObjectInfo, ObjectStore, blob_key, output_key
from storage.local import LocalDirStore
from storage.s3 import S3Store
from tests import factories
from tests.s3_server import S3ServerProcess

GRACE = timedelta(minutes=60)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class World:
    api: TestClient
    db: Database
    store: ObjectStore
    company_id: str
    kind: str
    root: Path

    def upload(self, data: bytes) -> str:
        response = self.api.put(f"/api/v1/blobs/{sha(data)}", content=data)
        assert response.status_code in (200, 201), response.text
        return sha(data)

    def rows(self) -> dict[str, int]:
        with self.db.session() as s:
            return {str(h): int(n) for h, n in s.execute(select(Blob.sha256, Blob.size))}

    def key(self, data: bytes) -> str:
        return blob_key(self.company_id, sha(data))

    def put(self, key: str, data: bytes) -> None:
        self.store.put_stream(key, io.BytesIO(data), len(data))

    def missing(self, *blobs: bytes) -> list[str]:
        response = self.api.post("/api/v1/blobs/missing", json={"hashes": [sha(b) for b in blobs]})
        assert response.status_code == 200, response.text
        return list(response.json()["missing"])


@contextmanager
def make_world(tmp_path: Path, store: ObjectStore, kind: str) -> Iterator[World]:
    with factories.api_farm(tmp_path, store) as farm, factories.client(farm) as http:
        with farm.db.session() as s:
            company_id = str(s.scalar(select(Company.id).where(Company.name == DEFAULT_COMPANY)))
        yield World(http, farm.db, store, company_id, kind, tmp_path)


@pytest.fixture(params=["local", "s3"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """The API on SQLite over a fresh store of each backend: a directory, or a new bucket on the S3 server."""
    if request.param == "local":
        with make_world(tmp_path, LocalDirStore(tmp_path / "objects"), "local") as w:
            yield w
        return
    server: S3ServerProcess = request.getfixturevalue("s3_server")
    endpoint, access, secret = server.credentials
    store = S3Store(endpoint, access, secret, f"fsck-{uuid.uuid4().hex[:16]}", retries=1, backoff_s=0.05)
    try:
        with make_world(tmp_path, store, "s3") as w:
            yield w
    finally:
        try:  # moto keeps objects in memory for the whole session
            for info in list(store.list("")):
                store.delete(info.key)
        finally:
            store.close()


# ---- blobs/missing and uploads trust the store, not the row ----------------------------------------------------
def test_missing_forgets_a_row_whose_object_is_gone_and_the_upload_restores_it(world: World) -> None:
    lost, kept, never = b"lost texture", b"kept texture", b"never uploaded"
    world.upload(lost)
    world.upload(kept)
    world.store.delete(world.key(lost))  # behind the farm's back

    assert world.missing(lost, kept, never) == sorted([sha(lost), sha(never)])
    assert set(world.rows()) == {sha(kept)}, "the row of the lost blob must be deleted"
    assert world.api.put(f"/api/v1/blobs/{sha(lost)}", content=lost).status_code == 201
    restored = world.store.stat(world.key(lost))
    assert restored == ObjectInfo(world.key(lost), len(lost))
    assert restored.modified is not None, "both backends date objects (fsck's grace period needs it)"
    assert world.missing(lost, kept) == []

    # A blob whose object has other bytes (a restore from another backup) is asked for again too.
    world.put(world.key(kept), b"something else entirely")
    assert world.missing(kept) == [sha(kept)]
    assert sha(kept) not in world.rows()


def test_an_upload_restores_the_object_of_a_row_that_lost_it(world: World) -> None:
    data = b"a blend file"
    world.upload(data)
    world.store.delete(world.key(data))
    again = world.api.put(f"/api/v1/blobs/{sha(data)}", content=data)
    assert again.status_code == 201 and again.json()["created"] is True, "an 'already held' answer stores nothing"
    assert world.store.stat(world.key(data)) == ObjectInfo(world.key(data), len(data))
    assert world.rows() == {sha(data): len(data)}
    # Held for real now: the next upload of the same bytes is a no-op.
    assert world.api.put(f"/api/v1/blobs/{sha(data)}", content=data).status_code == 200


def test_a_direct_upload_commit_restores_the_object_of_a_row_that_lost_it(world: World) -> None:
    data = b"a texture sent straight to the store"
    world.upload(data)
    world.store.delete(world.key(data))
    upload_id = new_upload_id(SystemClock().now())
    staged = upload_key(world.company_id, sha(data), upload_id)
    world.put(staged, data)
    committed = world.api.post(f"/api/v1/blobs/{sha(data)}/commit", json={"size": len(data), "upload": upload_id})
    assert committed.status_code == 201, committed.text
    assert world.store.stat(world.key(data)) == ObjectInfo(world.key(data), len(data))
    assert world.store.stat(staged) is None


def test_a_store_failure_while_checking_is_503_and_forgets_nothing(
    world: World, request: pytest.FixtureRequest
) -> None:
    data = b"held"
    world.upload(data)
    if world.kind == "local":
        # The company's blob folder becomes a symlink loop: stat fails with ELOOP, which is no answer.
        folder = world.root / "objects" / "blobs" / world.company_id
        for child in folder.iterdir():
            child.unlink()
        folder.rmdir()
        folder.symlink_to(folder.name)
        response = world.api.post("/api/v1/blobs/missing", json={"hashes": [sha(data)]})
    else:
        # The S3 server becomes unreachable (its data survives): the store's retries give up.
        server: S3ServerProcess = request.getfixturevalue("s3_server")
        server.stop()
        try:
            response = world.api.post("/api/v1/blobs/missing", json={"hashes": [sha(data)]})
        finally:
            server.start()
    assert response.status_code == 503, response.text
    assert world.key(data) in response.json()["detail"]
    assert world.rows() == {sha(data): len(data)}, "a failed check must not delete the row"


# ---- fsck ------------------------------------------------------------------------------------------------------
def _job_with_frames(world: World, blend: bytes) -> str:
    manifest = {"scene.blend": {"sha256": sha(blend), "size": len(blend)}}
    body = {"name": "shot", "blend_file": "scene.blend", "manifest": manifest, "frames": "1-3"}
    response = world.api.post("/api/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_fsck_reports_each_kind_and_repair_fixes_the_blobs(world: World) -> None:
    blend, lost, resized, orphan = b"BLENDER-fsck", b"lost blob", b"resized blob", b"orphan blob"
    for data in (blend, lost, resized):
        world.upload(data)
    job_id = _job_with_frames(world, blend)
    now = SystemClock().now()
    frame_keys = {n: output_key(world.company_id, job_id, f"frame_{n:06d}.png") for n in (1, 2, 3)}
    with world.db.session() as s:
        for n, key in frame_keys.items():
            s.add(
                Frame(
                    job_id=job_id,
                    frame=n,
                    task_id="t",
                    key=key,
                    name=key.rsplit("/", 1)[1],
                    size=4,
                    sha256="0" * 64,
                    created_at=now,
                )
            )
    world.put(frame_keys[1], b"good")
    world.put(frame_keys[3], b"too long")  # frame 2 is never stored
    world.store.delete(world.key(lost))
    world.put(world.key(resized), b"x")
    world.put(world.key(orphan), orphan)  # an object without its row

    dry = world.api.post("/api/v1/admin/fsck", json={"repair": False})
    assert dry.status_code == 200, dry.text
    report = dry.json()
    assert report["repaired"] is False and report["grace_minutes"] == 60
    assert report["blob_rows_without_objects"] == [world.key(lost)]
    assert report["blob_objects_without_rows"] == [world.key(orphan)]
    assert report["frames_without_objects"] == [frame_keys[2]]
    mismatches = {m["key"]: (m["recorded"], m["stored"]) for m in report["size_mismatches"]}
    assert mismatches == {world.key(resized): (len(resized), 1), frame_keys[3]: (4, len(b"too long"))}
    assert [(j["id"], j["frames"], j["company"]) for j in report["jobs_with_lost_frames"]] == [
        (job_id, [2, 3], DEFAULT_COMPANY)
    ]
    assert report["orphans_kept"] == [world.key(orphan)]  # just written: inside the grace period
    assert (report["deleted_rows"], report["deleted_objects"]) == (0, 0)
    assert set(world.rows()) == {sha(blend), sha(lost), sha(resized)}, "a dry run changes nothing"

    # Repair now: the two bad rows go (and the resized object), the young orphan stays.
    repaired = world.api.post("/api/v1/admin/fsck", json={"repair": True}).json()
    assert repaired["repaired"] is True
    assert (repaired["deleted_rows"], repaired["deleted_objects"], repaired["failed_deletes"]) == (2, 1, 0)
    assert set(world.rows()) == {sha(blend)}
    assert world.store.stat(world.key(resized)) is None
    assert world.store.stat(world.key(orphan)) is not None
    assert world.missing(lost, resized) == sorted([sha(lost), sha(resized)])

    # Two hours later the orphan is old enough to go; frames are never touched.
    later = fsck.check(world.db, world.store, SystemClock().now() + timedelta(hours=2), True, GRACE)
    assert later.blob_objects_without_rows == [world.key(orphan)] and later.orphans_kept == []
    assert later.deleted_objects == 1 and world.store.stat(world.key(orphan)) is None
    final = fsck.check(world.db, world.store, SystemClock().now(), False, GRACE)
    assert final.blob_rows_without_objects == [] and final.blob_objects_without_rows == []
    assert final.frames_without_objects == [frame_keys[2]]
    assert [m.key for m in final.size_mismatches] == [frame_keys[3]]
    assert world.store.stat(frame_keys[1]) is not None and world.store.stat(frame_keys[3]) is not None

    # An old orphan that an unfinished job still names is kept: a worker may need its bytes.
    with world.db.session() as s:
        s.execute(delete(Blob).where(Blob.sha256 == sha(blend)))
    named = fsck.check(world.db, world.store, SystemClock().now() + timedelta(hours=2), True, GRACE)
    assert named.blob_objects_without_rows == [world.key(blend)] and named.orphans_kept == [world.key(blend)]
    assert named.deleted_objects == 0 and world.store.stat(world.key(blend)) is not None


def test_a_blob_committed_during_the_scan_is_no_orphan(world: World) -> None:
    # The object is written first and its row a moment later: a scan between the two sees an orphan, and the
    # confirmation step must drop it once the row exists.
    data = b"in flight"
    world.put(world.key(data), data)
    found = fsck.Findings(orphans=[ObjectInfo(world.key(data), len(data))])
    world.upload(data)
    assert fsck._confirm(world.db, world.store, found).orphans == []


def test_orphans_of_unknown_age_or_inside_the_grace_period_are_kept() -> None:
    now = SystemClock().now()
    old = ObjectInfo("blobs/co/a", 1, now - timedelta(hours=2))
    young = ObjectInfo("blobs/co/b", 1, now - timedelta(minutes=5))
    undated = ObjectInfo("blobs/co/c", 1)
    assert fsck.deletable([old, young, undated], now, GRACE) == ([old], [young, undated])
    assert fsck.deletable([old, young, undated], now, timedelta(0)) == ([old, young], [undated])
    assert fsck.deletable([old, young], now, timedelta(0), {("co", "a")}) == ([young], [old])


def test_frame_ranges_are_compact() -> None:
    assert frame_ranges([7, 1, 2, 3, 9, 10]) == "1-3,7,9-10"
    assert frame_ranges([]) == ""


@pytest.fixture()
def local(tmp_path: Path) -> Iterator[World]:
    with make_world(tmp_path, LocalDirStore(tmp_path / "objects"), "local") as w:
        yield w


def test_fsck_is_for_platform_admins(local: World) -> None:
    now = SystemClock().now()
    for role in (Role.ARTIST, Role.COMPANY_ADMIN):
        with local.db.session() as s:
            token = factories.token(s, "fsck-co", role, now)
        response = local.api.post(
            "/api/v1/admin/fsck", json={"repair": True}, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 403, (role, response.text)
        assert "role" in response.json()["detail"]


# ---- on the session's embedded farm ----------------------------------------------------------------------------
def _cli(farm: object, *args: str, token: str | None = None) -> object:
    from farm.runtime.embedded import EmbeddedFarm

    assert isinstance(farm, EmbeddedFarm)
    env = {"FARM_URL": farm.url, "FARM_TOKEN": token or farm.admin_token}
    return CliRunner().invoke(app, list(args), env=env)


def _wait(client: object, job_id: str, timeout: float = 180) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.job(job_id)  # type: ignore[attr-defined]
        if job.status.value in ("completed", "failed", "canceled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {timeout}s")


@pytest.mark.ray
@pytest.mark.blender
def test_a_blob_lost_from_the_farms_store_is_found_by_fsck_and_uploaded_again(
    farm: object, client: object, sample_blend: Path
) -> None:
    from farm.client import FarmClient
    from farm.runtime.embedded import EmbeddedFarm

    assert isinstance(farm, EmbeddedFarm) and isinstance(client, FarmClient) and farm.store is not None
    first = client.submit(sample_blend, "1-2", name="fsck-first", samples=1)
    job = _wait(client, first.job.id)
    assert job.status.value == "completed", client.logs(first.job.id)  # type: ignore[attr-defined]
    with farm.db.session() as s:
        row = s.get(Job, first.job.id)
        assert row is not None
        company_id, entry = row.company_id, row.manifest[row.blend_file]
    key, size = blob_key(company_id, str(entry["sha256"])), int(str(entry["size"]))
    farm.store.delete(key)  # lost behind the farm's back

    found = _cli(farm, "admin", "fsck", "--json")
    assert found.exit_code == 0, found.output  # type: ignore[attr-defined]
    report = json.loads(found.output)  # type: ignore[attr-defined]
    assert key in report["blob_rows_without_objects"] and report["repaired"] is False
    human = _cli(farm, "admin", "fsck")
    assert human.exit_code == 0 and "blob rows without objects" in human.output  # type: ignore[attr-defined]
    assert key in human.output.replace("\n", "")  # type: ignore[attr-defined]

    again = client.submit(sample_blend, "1-2", name="fsck-again", samples=1)
    assert again.uploaded_bytes >= size > 0, "the lost blob must be uploaded again"
    job = _wait(client, again.job.id)
    assert job.status.value == "completed", client.logs(again.job.id)  # type: ignore[attr-defined]
    assert len(client.frames(again.job.id).frames) == 2
    stored = farm.store.stat(key)
    assert stored is not None and stored.size == size
    after = json.loads(_cli(farm, "admin", "fsck", "--json").output)  # type: ignore[attr-defined]
    assert key not in after["blob_rows_without_objects"]


def test_farm_admin_fsck_refuses_an_artist(farm: object) -> None:
    from farm.client.admin import AdminClient
    from farm.runtime.embedded import EmbeddedFarm

    assert isinstance(farm, EmbeddedFarm)
    with AdminClient(farm.url, farm.admin_token) as admin:
        artist = admin.create_token(TokenCreate(company=DEFAULT_COMPANY, role=Role.ARTIST, name="fsck-artist")).token
    refused = _cli(farm, "admin", "fsck", "--json", token=artist)
    assert refused.exit_code == 1  # type: ignore[attr-defined]
    assert "platform-admin role" in refused.output  # type: ignore[attr-defined]


def test_local_stat_dates_objects(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path)
    store.put_stream("blobs/co/x", io.BytesIO(b"1"), 1)
    os.utime(tmp_path / "blobs/co/x", (1_000_000_000, 1_000_000_000))
    info = store.stat("blobs/co/x")
    assert info is not None and info.modified is not None and info.modified.timestamp() == 1_000_000_000
    assert [i.modified for i in store.list("blobs/")] == [info.modified]
