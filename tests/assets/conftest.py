"""Fixtures of the asset tests: an S3 server (moto) for the package and an API on it without a scheduler."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from farm.db.engine import Database
from farm.settings import ServerSettings
from storage.s3 import S3Store
from tests import factories
from tests.s3_server import S3ServerProcess, running_s3_server

MAX_UPLOAD = 64 * 1024


@pytest.fixture(scope="package")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3ServerProcess]:
    """A real S3 server (moto) on 127.0.0.1 for the asset tests."""
    with running_s3_server(log_dir=tmp_path_factory.mktemp("assets-s3")) as server:
        yield server


@dataclass
class Api:
    url: str
    token: str
    db: Database
    store: S3Store
    settings: ServerSettings


@pytest.fixture()
def s3_api(s3_server: S3ServerProcess, tmp_path: Path) -> Iterator[Api]:
    """The API over HTTP on 127.0.0.1 with an S3 store in a fresh bucket (uploads up to 64 KiB)."""
    endpoint, access, secret = s3_server.credentials
    store = S3Store(endpoint, access, secret, f"assets-{uuid.uuid4().hex[:16]}", retries=1, backoff_s=0.05)
    try:
        with factories.api_farm(tmp_path, store, max_upload_bytes=MAX_UPLOAD) as farm, factories.serve(farm.app) as url:
            yield Api(url, farm.admin_token, farm.db, store, farm.settings)
    finally:
        store.close()
