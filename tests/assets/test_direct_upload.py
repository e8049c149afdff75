"""Direct uploads on the S3 backend: presigned PUT, then a commit the server checks (size, sha256)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from farm.client import FarmClient
from farm.client.packing import Pack
from farm.contract import ManifestEntry, Role
from tests import factories
from tests.assets.conftest import MAX_UPLOAD, Api


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def http(api: Api, token: str | None = None) -> httpx.Client:
    return httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token or api.token}"}, timeout=30)


def offer(client: httpx.Client, data: bytes) -> dict[str, str]:
    body = client.post("/api/v1/blobs/missing", json={"hashes": [sha(data)]}).json()
    assert body["missing"] == [sha(data)]
    return dict(body["uploads"][sha(data)])


def put(url: str, data: bytes) -> None:
    response = httpx.put(url, content=data)
    assert response.status_code == 200, response.text


def staged_and_blob_keys(api: Api) -> list[str]:
    return sorted(info.key for info in api.store.list(""))


def test_presigned_put_then_commit_makes_the_blob_count(s3_api: Api) -> None:
    data = b"texture bytes" * 100
    with http(s3_api) as client:
        target = offer(client, data)
        assert target["url"].startswith("http://127.0.0.1:")
        put(target["url"], data)
        # Uploaded but not committed: it does not count yet.
        assert client.post("/api/v1/blobs/missing", json={"hashes": [sha(data)]}).json()["missing"] == [sha(data)]
        done = client.post(f"/api/v1/blobs/{sha(data)}/commit", json={"size": len(data), "upload": target["upload"]})
        assert done.status_code == 201, done.text
        assert done.json() == {"sha256": sha(data), "size": len(data), "created": True}
        assert client.post("/api/v1/blobs/missing", json={"hashes": [sha(data)]}).json() == {
            "missing": [],
            "uploads": {},
        }
    keys = staged_and_blob_keys(s3_api)
    assert len(keys) == 1 and keys[0].startswith("blobs/") and keys[0].endswith(sha(data))


@pytest.mark.parametrize(
    ("sent", "announced", "status", "fragment"),
    [
        (b"not the bytes that were hashed", None, 422, "hash"),
        (b"right bytes", 5, 422, "bytes"),
        (b"x" * (MAX_UPLOAD + 1), None, 413, "maximum"),
    ],
)
def test_a_bad_direct_upload_is_refused_and_nothing_is_kept(
    s3_api: Api, sent: bytes, announced: int | None, status: int, fragment: str
) -> None:
    claimed = b"right bytes" if status != 413 else sent
    with http(s3_api) as client:
        target = offer(client, claimed)
        put(target["url"], sent)
        response = client.post(
            f"/api/v1/blobs/{sha(claimed)}/commit",
            json={"size": announced if announced is not None else len(sent), "upload": target["upload"]},
        )
        assert response.status_code == status, response.text
        assert fragment in response.json()["detail"]
        assert client.post("/api/v1/blobs/missing", json={"hashes": [sha(claimed)]}).json()["missing"] == [sha(claimed)]
    assert staged_and_blob_keys(s3_api) == []


def test_commit_without_an_upload_is_422_with_advice(s3_api: Api) -> None:
    with http(s3_api) as client:
        response = client.post(f"/api/v1/blobs/{sha(b'x')}/commit", json={"size": 1, "upload": "0" * 32})
    assert response.status_code == 422
    assert "PUT" in response.json()["detail"]


def test_blobs_are_namespaced_per_company(s3_api: Api) -> None:
    data = b"studio A's secret texture"
    with http(s3_api) as a:
        target = offer(a, data)
        put(target["url"], data)
        assert a.post(
            f"/api/v1/blobs/{sha(data)}/commit", json={"size": len(data), "upload": target["upload"]}
        ).is_success
    with s3_api.db.session() as s:
        token_b = factories.token(s, "studio-b", Role.ARTIST)
    with http(s3_api, token_b) as b:
        # B cannot learn that A holds the file: for B it is missing like any other...
        assert b.post("/api/v1/blobs/missing", json={"hashes": [sha(data)]}).json()["missing"] == [sha(data)]
        # ...and cannot claim A's upload either: the id names a key under B's own namespace, which is empty.
        stolen = b.post(f"/api/v1/blobs/{sha(data)}/commit", json={"size": len(data), "upload": target["upload"]})
        assert stolen.status_code == 422


class _NoApiUploads(FarmClient):
    def upload_blob(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("the bytes should have gone straight to the object store")


def test_the_client_uploads_through_presigned_urls_and_reuses_what_is_there(s3_api: Api, tmp_path: Path) -> None:
    files = {"scene.blend": b"BLENDER" + b"\0" * 64, "textures/a.png": b"a" * 5000, "textures/b.png": b"b" * 7000}
    pack = Pack(root=tmp_path, blend_rel="scene.blend")
    entries = {}
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
        pack.files[rel] = tmp_path / rel
        entries[rel] = ManifestEntry(sha256=sha(data), size=len(data))
    with _NoApiUploads(s3_api.url, s3_api.token) as client:
        assert client.upload_missing(pack, entries) == (sum(map(len, files.values())), 0, 3)
        assert client.upload_missing(pack, entries) == (0, sum(map(len, files.values())), 0)
    assert len([k for k in staged_and_blob_keys(s3_api) if k.startswith("blobs/")]) == 3
    assert not [k for k in staged_and_blob_keys(s3_api) if k.startswith("uploads/")]
