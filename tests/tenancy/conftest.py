"""Fixtures for tenancy tests: an API on a real SQLite database (no scheduler), and token minting."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from farm.clock import SystemClock
from farm.contract import Role
from farm.db.engine import Database
from farm.runtime.api import wire_app
from farm.runtime.bootstrap import bootstrap
from farm.services.auth import create_token, ensure_company
from farm.settings import ServerSettings
from storage.local import LocalDirStore


class Api(TestClient):
    """A TestClient that knows the database behind it and can act as any token."""

    db: Database
    admin_token: str

    def mint(self, company: str, role: Role = Role.ARTIST, expires_at: datetime | None = None) -> str:
        """A token straight from the database (bypassing the API), for setting up a scene."""
        now = SystemClock().now()
        with self.db.session() as s:
            value, _ = create_token(s, ensure_company(s, company, now), role, now, expires_at=expires_at)
        return value

    def as_(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture()
def api(tmp_path) -> Iterator[Api]:
    settings = ServerSettings(data_dir=tmp_path, port=0, max_upload_bytes=100_000)
    db = Database(settings.db_url)
    db.migrate()
    token = bootstrap(db, SystemClock(), tmp_path)
    with Api(wire_app(settings, db, LocalDirStore(tmp_path / "objects"), SystemClock())) as http:
        http.db = db
        http.admin_token = token
        http.headers["Authorization"] = f"Bearer {token}"
        yield http
    db.dispose()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def yesterday() -> datetime:
    return SystemClock().now() - timedelta(days=1)
