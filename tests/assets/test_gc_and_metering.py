"""Blob garbage collection (dry run vs apply) and storage bytes sampled into the ledger as GB-hours."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from farm.clock import SystemClock
from farm.db.models import Blob, Job
from farm.metering.storage_usage import BYTES_PER_GB, StorageSampler, bytes_by_company
from farm.services.blobs import UPLOAD_PREFIX, new_upload_id
from storage.base import output_key
from tests import factories
from web.deps import AppContext


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture()
def api(tmp_path: Path) -> Iterator[TestClient]:
    with factories.api_farm(tmp_path) as farm, factories.client(farm) as http:
        http.app_ctx = farm.app.state.ctx  # type: ignore[attr-defined]
        yield http


def upload(api: TestClient, data: bytes) -> str:
    assert api.put(f"/api/v1/blobs/{sha(data)}", content=data).is_success
    return sha(data)


def submit(api: TestClient, blend: bytes, texture: bytes) -> str:
    manifest = {
        "scene.blend": {"sha256": sha(blend), "size": len(blend)},
        "tex.png": {"sha256": sha(texture), "size": len(texture)},
    }
    body = {"name": "shot", "blend_file": "scene.blend", "manifest": manifest, "frames": "1"}
    response = api.post("/api/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_gc_dry_run_lists_and_apply_deletes_only_unreferenced_old_blobs(api: TestClient) -> None:
    ctx: AppContext = api.app_ctx  # type: ignore[attr-defined]
    blend, kept_tex, old_tex, fresh = b"BLENDER-1", b"kept texture", b"old texture", b"just uploaded"
    for data in (blend, kept_tex, old_tex, fresh):
        upload(api, data)
    recent_job = submit(api, blend, kept_tex)
    old_job = submit(api, blend, old_tex)
    now = SystemClock().now()
    stale_upload = f"{UPLOAD_PREFIX}co/{sha(b'never committed')}/{new_upload_id(now - timedelta(days=2))}"
    live_upload = f"{UPLOAD_PREFIX}co/{sha(b'in flight')}/{new_upload_id(now)}"
    for key in (stale_upload, live_upload):
        ctx.store.put_stream(key, io.BytesIO(b"x"), 1)
    with ctx.db.session() as s:
        long_ago = now - timedelta(days=40)
        s.execute(update(Blob).where(Blob.sha256 != sha(fresh)).values(created_at=long_ago))
        s.execute(update(Job).where(Job.id == old_job).values(created_at=long_ago, status="completed"))

    dry = api.post("/api/v1/admin/gc")
    assert dry.status_code == 200, dry.text
    report = dry.json()
    assert report["applied"] is False
    assert report["blobs"] == [f"default/{sha(old_tex)}"]
    assert report["blob_bytes"] == len(old_tex) and report["stale_uploads"] == 1
    assert api.post("/api/v1/blobs/missing", json={"hashes": [sha(old_tex)]}).json()["missing"] == []

    applied = api.post("/api/v1/admin/gc", params={"apply": True}).json()
    assert applied["applied"] is True and applied["blobs"] == [f"default/{sha(old_tex)}"]
    missing = api.post("/api/v1/blobs/missing", json={"hashes": [sha(d) for d in (blend, kept_tex, old_tex, fresh)]})
    assert missing.json()["missing"] == [sha(old_tex)]
    keys = {info.key for info in ctx.store.list("")}
    assert not any(k.endswith(sha(old_tex)) for k in keys)
    assert stale_upload not in keys and live_upload in keys
    assert api.get(f"/api/v1/jobs/{recent_job}").status_code == 200
    # A shorter retention makes the recent job's blobs garbage too, but only in a dry run here.
    assert api.post("/api/v1/admin/gc", params={"retention_days": 0.0001}).json()["applied"] is False


def test_storage_is_sampled_into_the_ledger_as_gb_hours(api: TestClient) -> None:
    ctx: AppContext = api.app_ctx  # type: ignore[attr-defined]
    upload(api, b"b" * 3000)
    with ctx.db.session() as s:
        company = s.query(Blob.company_id).first()[0]  # type: ignore[index]
    frame = ctx.settings.data_dir / "frame.png"
    frame.write_bytes(b"f" * 2000)
    ctx.store.put_file(output_key(company, "job-1", "frame_000001.png"), frame)
    ctx.store.put_file(f"{UPLOAD_PREFIX}{company}/x/{new_upload_id(SystemClock().now())}", frame)  # not billed
    assert bytes_by_company(ctx.store) == {company: 5000}

    class Clock:
        now_value = SystemClock().now()

        def now(self):  # type: ignore[no-untyped-def]
            return self.now_value

        def monotonic(self) -> float:
            return 0.0

    clock = Clock()
    sampler = StorageSampler(ctx.db, ctx.store, clock, interval_s=3600)
    sampler.tick()  # the first tick marks the start
    clock.now_value += timedelta(hours=2)
    assert sampler.sample() == 1
    rows = api.get("/api/v1/usage").json()["totals"]
    storage = [r for r in rows if r["resource"] == "storage"]
    assert len(storage) == 1
    assert storage[0]["hours"] == pytest.approx(5000 / BYTES_PER_GB * 2)  # GB-hours
