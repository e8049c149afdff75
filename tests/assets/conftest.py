"""Fixtures of the asset tests: an S3 server (moto) for the package and an API on it without a scheduler."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from farm.clock import SystemClock
from farm.db.engine import Database
from farm.runtime.api import wire_app
from farm.runtime.bootstrap import bootstrap
from farm.runtime.embedded import free_port
from farm.settings import ServerSettings
from storage.s3 import S3Store
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
    settings = ServerSettings(data_dir=tmp_path, port=0, max_upload_bytes=MAX_UPLOAD, write_cli_config=False)
    db = Database(settings.db_url)
    db.migrate()
    token = bootstrap(db, SystemClock(), tmp_path)
    endpoint, access, secret = s3_server.credentials
    store = S3Store(endpoint, access, secret, f"assets-{uuid.uuid4().hex[:16]}", retries=1, backoff_s=0.05)
    app = wire_app(settings, db, store, SystemClock())
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the API did not start"
        time.sleep(0.02)
    try:
        yield Api(f"http://127.0.0.1:{port}", token, db, store, settings)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        store.close()
        db.dispose()
