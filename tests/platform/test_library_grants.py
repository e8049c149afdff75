"""A render node holds no store key: a job's grant reaches a library asset in its publisher's namespace (and only
the assets the job's manifest names), so the worker lays it out like any input on an S3 farm (issue 20)."""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Iterator

import pytest

from farm.domain.inputs import FROM_FIELD
from farm.errors import StorageError
from storage.base import blob_key
from storage.grants import GrantedStore, GrantIssuer
from storage.s3 import S3Store
from tests.assets.sigv4_gate import SigV4Gate
from tests.s3_server import S3ServerProcess, running_s3_server
from workers.cache import BlobCache
from workers.layout import JobFolder


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Store]:
    """A keyed S3 store (what the scheduler holds) behind a gate that checks signatures as S3 does."""
    server: S3ServerProcess
    with running_s3_server(log_dir=tmp_path_factory.mktemp("lib-s3")) as server:
        with SigV4Gate(server.endpoint, server.secret_key) as gate:
            keyed = S3Store(gate.endpoint, server.access_key, server.secret_key, f"lib-{uuid.uuid4().hex[:12]}")
            yield keyed
            keyed.close()


def put(store: S3Store, company: str, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    store.put_stream(blob_key(company, sha), io.BytesIO(data), len(data))
    return sha


def test_grant_reads_the_library_asset_from_its_publisher(store: S3Store, tmp_path) -> None:
    hdri, scene, private = b"shared sky " * 500, b"b's scene " * 50, b"a's unpublished plate " * 20
    sky, mine, secret = put(store, "co-a", hdri), put(store, "co-b", scene), put(store, "co-a", private)
    manifest = {
        "scene.blend": {"sha256": mine, "size": len(scene)},
        "tex/sky.hdr": {"sha256": sky, "size": len(hdri), FROM_FIELD: "co-a"},
    }
    grant = GrantIssuer(store)("co-b", "job-lib", manifest, 2)
    granted = GrantedStore(grant)
    folder = JobFolder(tmp_path / "job")
    folder.prepare(BlobCache(tmp_path / "cache", 10**9), granted, "co-b", manifest)
    assert (folder.input / "tex/sky.hdr").read_bytes() == hdri
    assert (folder.input / "scene.blend").read_bytes() == scene
    # The grant names exactly the manifest's objects: nothing else of the publisher's is reachable.
    assert sorted(grant.inputs) == sorted([blob_key("co-a", sky), blob_key("co-b", mine)])
    with pytest.raises(StorageError, match="not granted"):
        granted.get_file(blob_key("co-a", secret), tmp_path / "stolen")
