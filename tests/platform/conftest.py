"""Fixtures of the shared-platform tests (issue 20): an API on a real SQLite database and local store, no
scheduler; companies, tokens and uploads made through the API as studios make them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from farm.contract import Role
from tests import factories


class Api(TestClient):
    """A TestClient that knows its farm and can act as any company's token."""

    farm: factories.ApiFarm

    def mint(self, company: str, role: Role = Role.COMPANY_ADMIN) -> dict[str, str]:
        """Headers with a new token of ``role`` for ``company`` (created when absent)."""
        with self.farm.db.session() as s:
            return {"Authorization": f"Bearer {factories.token(s, company, role)}"}

    def upload(self, data: bytes, who: dict[str, str]) -> str:
        """Upload ``data`` as the token's company (through the API, verified); returns its sha256."""
        sha = hashlib.sha256(data).hexdigest()
        answer = self.put(f"/api/v1/blobs/{sha}", content=data, headers=who)
        assert answer.status_code in (200, 201), answer.text
        return sha

    def missing(self, hashes: list[str], who: dict[str, str]) -> list[str]:
        answer = self.post("/api/v1/blobs/missing", json={"hashes": hashes, "direct": False}, headers=who)
        assert answer.status_code == 200, answer.text
        return list(answer.json()["missing"])

    def publish(self, sha: str, who: dict[str, str], name: str = "sky", **fields: object) -> dict[str, object]:
        body = {"sha256": sha, "name": name, "filename": "sky.hdr", "licence": "CC-BY 4.0", **fields}
        answer = self.post("/api/v1/library", json=body, headers=who)
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    def submit(self, manifest: dict[str, tuple[str, int]], who: dict[str, str]) -> Any:
        body = {
            "name": "shot",
            "blend_file": next(iter(manifest)),
            "frames": "1-2",
            "chunk_size": 1,
            "manifest": {path: {"sha256": sha, "size": size} for path, (sha, size) in manifest.items()},
        }
        return self.post("/api/v1/jobs", json=body, headers=who)


@pytest.fixture()
def api(tmp_path) -> Iterator[Api]:
    with factories.api_farm(tmp_path) as farm, factories.client(farm, Api) as http:
        http.farm = farm
        yield http


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
