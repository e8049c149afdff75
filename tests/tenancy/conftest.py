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
from tests import factories


class Api(TestClient):
    """A TestClient that knows the database behind it and can act as any token."""

    db: Database
    admin_token: str

    def mint(self, company: str, role: Role = Role.ARTIST, expires_at: datetime | None = None) -> str:
        """A token straight from the database (bypassing the API), for setting up a scene."""
        with self.db.session() as s:
            return factories.token(s, company, role, expires_at=expires_at)

    def as_(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture()
def api(tmp_path) -> Iterator[Api]:
    with factories.api_farm(tmp_path, max_upload_bytes=100_000) as farm, factories.client(farm, Api) as http:
        http.db = farm.db
        http.admin_token = farm.admin_token
        yield http


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def yesterday() -> datetime:
    return SystemClock().now() - timedelta(days=1)
