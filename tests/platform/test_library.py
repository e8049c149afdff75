"""The common asset library through the API: publish, browse, pull, retract; stored once, used by reference; the
blob privacy rule; who uses what (issue 20)."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import select

from farm.contract import Role
from farm.db.models import Job, LibraryUse
from farm.domain.inputs import FROM_FIELD
from farm.metering.storage_usage import bytes_by_company
from farm.services import gc
from storage.base import blob_key
from tests.platform.conftest import sha
from workers.cache import BlobCache
from workers.layout import JobFolder

HDRI = b"#?RADIANCE\n" + secrets.token_bytes(2000)  # the shared asset's bytes


def _company_id(api, name):
    from farm.db.models import Company

    with api.farm.db.session() as s:
        return s.scalar(select(Company.id).where(Company.name == name))


def test_publish_browse_show_pull(api):
    pub = api.mint("studio-a")
    digest = api.upload(HDRI, pub)
    asset = api.publish(digest, pub, name="studio sky", tags=["hdri", "sky"])
    assert (asset["publisher"], asset["visibility"], asset["size"], asset["tags"]) == (
        "studio-a",
        "all",
        len(HDRI),
        ["hdri", "sky"],
    )
    user = api.mint("studio-b", Role.ARTIST)
    listed = api.get("/api/v1/library", params={"tag": "hdri"}, headers=user).json()["assets"]
    assert [a["id"] for a in listed] == [asset["id"]]
    assert api.get("/api/v1/library", params={"tag": "font"}, headers=user).json()["assets"] == []
    shown = api.get(f"/api/v1/library/{asset['id']}", headers=user).json()
    assert shown["licence"] == "CC-BY 4.0" and shown["to"] is None
    pulled = api.get(f"/api/v1/library/{asset['id']}/file", headers=user)
    assert pulled.status_code == 200 and pulled.content == HDRI


def test_publishing_needs_an_owned_upload_and_an_admin_and_good_input(api):
    pub = api.mint("studio-a")
    body = {"sha256": sha(HDRI), "name": "sky", "filename": "sky.hdr", "licence": "CC0"}
    refused = api.post("/api/v1/library", json=body, headers=pub)
    assert refused.status_code == 422 and "holds no blob" in refused.json()["detail"]
    api.upload(HDRI, pub)
    artist = api.mint("studio-a", Role.ARTIST)
    assert api.post("/api/v1/library", json=body, headers=artist).status_code == 403
    for bad, fragment in (
        ({"filename": "../x"}, "filename"),
        ({"filename": ".."}, "filename"),
        ({"filename": 'a"b'}, "filename"),
        ({"licence": ""}, "licence"),
        ({"name": ""}, "name"),
        ({"tags": ["two words"]}, "tags"),
        ({"to": ["nobody-here"]}, "nobody-here"),
        ({"extra": 1}, "extra"),
    ):
        answer = api.post("/api/v1/library", json={**body, **bad}, headers=pub)
        assert answer.status_code == 422 and fragment in answer.json()["detail"], (bad, answer.text)
    assert api.post("/api/v1/library", json=body, headers=pub).status_code == 201
    again = api.post("/api/v1/library", json=body, headers=pub)
    assert again.status_code == 409 and "already publishes" in again.json()["detail"]
    # Another company cannot publish bytes it never uploaded, even ones it may use from the library.
    other = api.mint("studio-b")
    assert api.post("/api/v1/library", json=body, headers=other).status_code == 422


def test_stored_once_used_by_reference_and_laid_out_like_any_input(api, tmp_path):
    pub, user = api.mint("studio-a"), api.mint("studio-b")
    digest = api.upload(HDRI, pub)
    api.publish(digest, pub)
    scene = b"BLENDER-v500" + secrets.token_bytes(100)
    assert api.missing([digest, sha(scene)], user) == [sha(scene)]  # the library asset counts as held
    api.upload(scene, user)
    job = api.submit({"scene.blend": (sha(scene), len(scene)), "tex/sky.hdr": (digest, len(HDRI))}, user)
    assert job.status_code == 201, job.text
    job_id = job.json()["id"]
    a, b = _company_id(api, "studio-a"), _company_id(api, "studio-b")
    # Stored once: the bytes are in the publisher's namespace only; B's storage is billed for its scene alone.
    keys = [i.key for i in api.farm.store.list("blobs/")]
    assert keys.count(blob_key(a, digest)) == 1 and blob_key(b, digest) not in keys
    held = bytes_by_company(api.farm.store)
    assert held[a] == len(HDRI) and held[b] == len(scene)
    with api.farm.db.session() as s:
        manifest = s.get(Job, job_id).manifest
        assert manifest["tex/sky.hdr"][FROM_FIELD] == a and FROM_FIELD not in manifest["scene.blend"]
        assert s.scalar(select(LibraryUse.company_id).where(LibraryUse.job_id == job_id)) == b
    # The worker's own layout code lays the job folder out from the node cache: the asset's bytes, B's scene.
    folder = JobFolder(tmp_path / "job")
    folder.prepare(BlobCache(tmp_path / "cache", 10**9), api.farm.store, b, manifest)
    assert (folder.input / "tex/sky.hdr").read_bytes() == HDRI
    assert (folder.input / "scene.blend").read_bytes() == scene


def test_private_blobs_stay_private(api):
    """A company never learns whether another holds an unpublished file, nor one listed for someone else."""
    a, b = api.mint("studio-a"), api.mint("studio-b")
    api.mint("studio-c")
    secret_file = b"unpublished plate " + secrets.token_bytes(64)
    listed_file = b"for studio-c only " + secrets.token_bytes(64)
    nobody = sha(b"nobody has this " + secrets.token_bytes(8))
    private = api.upload(secret_file, a)
    for_c = api.upload(listed_file, a)
    asset = api.publish(for_c, a, name="c only", to=["studio-c"])
    assert asset["visibility"] == "listed" and asset["to"] == ["studio-c"]
    # To B, A's private blob and the one listed for C answer exactly as a hash nobody holds.
    assert api.missing([private, for_c, nobody], b) == sorted([private, for_c, nobody])
    refused = api.submit({"s.blend": (private, len(secret_file)), "t.png": (for_c, len(listed_file))}, b)
    assert refused.status_code == 409 and sorted(refused.json()["missing"]) == sorted([private, for_c])
    assert api.get(f"/api/v1/library/{asset['id']}", headers=b).status_code == 404
    assert api.get(f"/api/v1/library/{asset['id']}/file", headers=b).status_code == 404
    assert api.get("/api/v1/library", headers=b).json()["assets"] == []
    # C may use it, and does not learn whom else it is shared with.
    c = api.mint("studio-c")
    assert api.missing([for_c, private], c) == [private]
    assert api.get(f"/api/v1/library/{asset['id']}", headers=c).json()["to"] is None
    # Neither the usage nor the retraction of someone else's asset is anyone else's business.
    assert api.get(f"/api/v1/library/{asset['id']}/usage", headers=c).status_code == 404
    assert api.post(f"/api/v1/library/{asset['id']}/retract", headers=c).status_code == 404
    assert api.get("/api/v1/library/lib-nope", headers=c).status_code == 404


def test_retraction_stops_new_use_but_never_breaks_a_queued_job(api, tmp_path):
    pub, user = api.mint("studio-a"), api.mint("studio-b")
    digest = api.upload(HDRI, pub)
    asset = api.publish(digest, pub)
    scene = b"BLENDER-v500" + secrets.token_bytes(50)
    api.upload(scene, user)
    manifest = {"scene.blend": (sha(scene), len(scene)), "sky.hdr": (digest, len(HDRI))}
    queued = api.submit(manifest, user)
    assert queued.status_code == 201
    retracted = api.post(f"/api/v1/library/{asset['id']}/retract", headers=pub)
    assert retracted.status_code == 200 and retracted.json()["retracted_at"]
    # No new use: not held any more, a new job is refused, it is gone from the listing and from pulls.
    assert api.missing([digest], user) == [digest]
    late = api.submit(manifest, user)
    assert late.status_code == 409 and late.json()["missing"] == [digest]
    assert api.get("/api/v1/library", headers=user).json()["assets"] == []
    assert api.get(f"/api/v1/library/{asset['id']}/file", headers=user).status_code == 404
    # The publisher still sees it (retracted) in its own list.
    mine = api.get("/api/v1/library", params={"mine": True, "retracted": True}, headers=pub).json()["assets"]
    assert [a["id"] for a in mine] == [asset["id"]]
    # gc far in the future keeps the bytes the queued job names (in the publisher's namespace).
    a, b = _company_id(api, "studio-a"), _company_id(api, "studio-b")
    report = gc.collect(api.farm.db, api.farm.store, api.farm.clock.now() + timedelta(days=365), 1.0, True)
    assert f"{a}/{digest}" not in " ".join(report.blobs)
    with api.farm.db.session() as s:
        manifest_rows = s.get(Job, queued.json()["id"]).manifest
    folder = JobFolder(tmp_path / "job")
    folder.prepare(BlobCache(tmp_path / "cache", 10**9), api.farm.store, b, manifest_rows)
    assert (folder.input / "sky.hdr").read_bytes() == HDRI


def test_publisher_sees_jobs_and_companies_per_month(api):
    pub = api.mint("studio-a")
    digest = api.upload(HDRI, pub)
    asset = api.publish(digest, pub)
    for company, jobs in (("studio-b", 2), ("studio-c", 1)):
        who = api.mint(company)
        scene = f"scene of {company}".encode() + secrets.token_bytes(8)
        api.upload(scene, who)
        for _ in range(jobs):
            made = api.submit({"s.blend": (sha(scene), len(scene)), "sky.hdr": (digest, len(HDRI))}, who)
            assert made.status_code == 201, made.text
    usage = api.get(f"/api/v1/library/{asset['id']}/usage", headers=pub)
    assert usage.status_code == 200, usage.text
    month = api.farm.clock.now().strftime("%Y-%m")
    assert usage.json()["months"] == [{"month": month, "jobs": 3, "companies": 2, "bytes_avoided": 2 * len(HDRI)}]
    artist = api.mint("studio-a", Role.ARTIST)
    assert api.get(f"/api/v1/library/{asset['id']}/usage", headers=artist).status_code == 403


def test_a_lost_library_object_is_uploaded_again_by_the_user(api):
    pub, user = api.mint("studio-a"), api.mint("studio-b")
    digest = api.upload(HDRI, pub)
    api.publish(digest, pub)
    api.farm.store.delete(blob_key(_company_id(api, "studio-a"), digest))
    assert api.missing([digest], user) == [digest]
