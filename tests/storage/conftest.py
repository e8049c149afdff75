"""Fixtures for the object-store tests: one S3 server per session, and a fresh store of each backend."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.base import ObjectStore
from storage.local import LocalDirStore
from storage.s3 import S3Store
from tests.s3_server import S3ServerProcess, running_s3_server

MIB = 1024 * 1024


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3ServerProcess]:
    """A real S3 server (moto) on 127.0.0.1; tests that stop it must start it again."""
    with running_s3_server(log_dir=tmp_path_factory.mktemp("s3-server")) as server:
        yield server


def unique_bucket() -> str:
    """A bucket name no other test uses (S3 names: 3-63 lowercase letters, digits, hyphens)."""
    return f"test-{uuid.uuid4().hex[:20]}"


def make_s3_store(server: S3ServerProcess, bucket: str | None = None, **kwargs: object) -> S3Store:
    """An ``S3Store`` on ``server`` with small multipart sizes, so a 12 MiB stream already goes multipart."""
    options: dict[str, object] = {
        "multipart_threshold": 5 * MIB,
        "part_size": 5 * MIB,
        "retries": 2,
        "backoff_s": 0.05,
    }
    options.update(kwargs)
    endpoint, access_key, secret_key = server.credentials
    return S3Store(endpoint, access_key, secret_key, bucket or unique_bucket(), **options)  # type: ignore[arg-type]


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    """A fresh, empty store of each backend: a directory, or a new bucket on the session's S3 server."""
    if request.param == "local":
        yield LocalDirStore(tmp_path / "store")
        return
    server: S3ServerProcess = request.getfixturevalue("s3_server")
    s3 = make_s3_store(server)
    yield s3
    # moto keeps objects in memory for the whole session: drop this test's.
    if server.running:
        for info in list(s3.list("")):
            s3.delete(info.key)
    s3.close()
