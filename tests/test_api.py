"""API contract and bad input, on a real database (SQLite and PostgreSQL) and local store (no scheduler needed)."""

import hashlib

import pytest

from tests import factories

pytest_plugins = ["tests.db.backends"]  # db_url: every test runs on SQLite and on PostgreSQL

BLEND = b"BLENDER-v500" + b"\x00" * 100


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture()
def api(tmp_path, db_url):
    with factories.api_farm(tmp_path, max_upload_bytes=10_000, database_url=db_url) as farm:
        with factories.client(farm) as http:
            http.token = farm.admin_token
            yield http


def upload(api, data: bytes):
    return api.put(f"/api/v1/blobs/{sha(data)}", content=data)


def job_body(data: bytes = BLEND, **extra):
    body = {
        "name": "shot",
        "blend_file": "scene.blend",
        "manifest": {"scene.blend": {"sha256": sha(data), "size": len(data)}},
        "frames": "1-6",
        "chunk_size": 2,
    }
    body.update(extra)
    return body


def test_health_needs_no_token(api):
    del api.headers["Authorization"]
    assert api.get("/healthz").json()["status"] == "ok"
    assert api.get("/readyz").status_code == 200


def test_no_token_is_401_with_www_authenticate(api):
    del api.headers["Authorization"]
    for method, path in [("GET", "/api/v1/jobs"), ("POST", "/api/v1/jobs"), ("GET", "/api/v1/usage")]:
        response = api.request(method, path)
        assert response.status_code == 401, path
        assert "Bearer" in response.headers["www-authenticate"]
        assert "token" in response.json()["detail"]


def test_garbage_token_is_401(api):
    api.headers["Authorization"] = "Bearer nonsense"
    assert api.get("/api/v1/jobs").status_code == 401


def test_admin_token_file_is_private(api, tmp_path):
    assert (tmp_path / "admin.token").stat().st_mode & 0o777 == 0o600


def test_missing_then_upload_then_not_missing(api):
    assert api.post("/api/v1/blobs/missing", json={"hashes": [sha(BLEND)]}).json()["missing"] == [sha(BLEND)]
    first = upload(api, BLEND)
    assert first.status_code == 201 and first.json()["created"] is True
    assert upload(api, BLEND).status_code == 200  # idempotent
    assert api.post("/api/v1/blobs/missing", json={"hashes": [sha(BLEND)]}).json()["missing"] == []


def test_upload_with_wrong_hash_is_422_and_nothing_is_kept(api, tmp_path):
    response = api.put(f"/api/v1/blobs/{sha(b'other')}", content=BLEND)
    assert response.status_code == 422
    assert "hash" in response.json()["detail"]
    assert api.post("/api/v1/blobs/missing", json={"hashes": [sha(b"other")]}).json()["missing"] == [sha(b"other")]
    assert not list((tmp_path / "spool").iterdir())


def test_upload_over_the_maximum_is_413(api):
    big = b"x" * 20_000
    response = upload(api, big)
    assert response.status_code == 413
    assert "maximum" in response.json()["detail"]


def test_bad_hash_in_path_is_422(api):
    assert api.put("/api/v1/blobs/not-a-hash", content=b"x").status_code == 422


def test_create_job_and_read_it_back(api):
    upload(api, BLEND)
    response = api.post("/api/v1/jobs", json=job_body())
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["status"] == "queued" and job["frames_total"] == 6 and job["tasks_total"] == 3
    assert api.get(f"/api/v1/jobs/{job['id']}").json()["id"] == job["id"]
    tasks = api.get(f"/api/v1/jobs/{job['id']}/tasks").json()["tasks"]
    assert [t["frames"] for t in tasks] == ["1-2", "3-4", "5-6"]
    assert [j["id"] for j in api.get("/api/v1/jobs").json()["jobs"]] == [job["id"]]
    assert api.get(f"/api/v1/jobs/{job['id']}/frames").json()["frames"] == []


def test_cancel_a_queued_job(api):
    upload(api, BLEND)
    job = api.post("/api/v1/jobs", json=job_body()).json()
    canceled = api.post(f"/api/v1/jobs/{job['id']}/cancel").json()
    assert canceled["status"] == "canceled"
    assert {t["status"] for t in api.get(f"/api/v1/jobs/{job['id']}/tasks").json()["tasks"]} == {"canceled"}


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("10-1", "reversed"),
        ("", "empty"),
        ("abc", "not a number"),
        ("1-999999", "more than"),
        ("1-99999999", "outside"),
    ],
)
def test_bad_frame_spec_is_400_with_advice(api, spec, fragment):
    upload(api, BLEND)
    response = api.post("/api/v1/jobs", json=job_body(frames=spec))
    assert response.status_code == 400, response.text
    assert fragment in response.json()["detail"]


def test_job_naming_a_missing_blob_is_409_listing_it(api):
    response = api.post("/api/v1/jobs", json=job_body())
    assert response.status_code == 409
    assert response.json()["missing"] == [sha(BLEND)]
    assert sha(BLEND) in response.json()["detail"]


@pytest.mark.parametrize(
    ("manifest_path", "fragment"),
    [("/abs/scene.blend", "relative"), ("../scene.blend", ".."), ("a/../../scene.blend", "..")],
)
def test_manifest_paths_must_stay_inside(api, manifest_path, fragment):
    body = job_body()
    body["manifest"] = {manifest_path: body["manifest"]["scene.blend"]}
    body["blend_file"] = manifest_path
    response = api.post("/api/v1/jobs", json=body)
    assert response.status_code == 422
    assert fragment in response.json()["detail"]


def test_blend_file_must_be_in_manifest(api):
    response = api.post("/api/v1/jobs", json=job_body(blend_file="other.blend"))
    assert response.status_code == 422
    assert "not one of the manifest" in response.json()["detail"]


def test_bad_resolution_is_422(api):
    upload(api, BLEND)
    response = api.post("/api/v1/jobs", json=job_body(resolution="big"))
    assert response.status_code == 422 and "WIDTHxHEIGHT" in response.json()["detail"]


def test_unknown_job_is_404(api):
    for path in [
        "/api/v1/jobs/job-nope",
        "/api/v1/jobs/job-nope/tasks",
        "/api/v1/jobs/job-nope/frames",
        "/api/v1/jobs/job-nope/logs",
        "/api/v1/jobs/job-nope/frames/1",
    ]:
        response = api.get(path)
        assert response.status_code == 404, path
        assert "not found" in response.json()["detail"]
    assert api.post("/api/v1/jobs/job-nope/cancel").status_code == 404


def test_usage_month_is_validated(api):
    assert api.get("/api/v1/usage", params={"month": "2026-13"}).status_code == 422
    assert api.get("/api/v1/usage", params={"month": "2026-11"}).json()["rows"] == []
