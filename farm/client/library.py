"""Client SDK for the common asset library and the operator's report (issue 20)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from farm.client.api import ClientError, FarmClient
from farm.contract import LibraryAssetOut, LibraryList, LibraryPublish, LibraryUsage, OperatorReport

BLOCK = 1024 * 1024


def sha256_of(path: Path) -> tuple[str, int]:
    """The file's sha256 and size."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(BLOCK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


class LibraryClient(FarmClient):
    """``FarmClient`` plus ``/api/v1/library`` and ``/api/v1/admin/report``."""

    def __enter__(self) -> LibraryClient:
        return self

    def library(self, tag: str | None = None, mine: bool = False, retracted: bool = False) -> list[LibraryAssetOut]:
        params: dict[str, Any] = {"mine": mine, "retracted": retracted}
        if tag:
            params["tag"] = tag
        return LibraryList.model_validate(self._request("GET", "/api/v1/library", params=params).json()).assets

    def library_asset(self, asset_id: str) -> LibraryAssetOut:
        return LibraryAssetOut.model_validate(self._request("GET", f"/api/v1/library/{asset_id}").json())

    def publish(
        self, path: Path, name: str, licence: str, tags: list[str] | None = None, to: list[str] | None = None
    ) -> LibraryAssetOut:
        """Upload the file unless the company holds it already, then publish it under ``name``."""
        sha, size = sha256_of(path)
        spec = LibraryPublish(
            sha256=sha, name=name, filename=path.name, licence=licence, tags=tags or [], to=to or []
        ).model_dump(mode="json")
        if self.missing_blobs([sha]):
            self.upload_blob(path, sha, size)
        try:
            answer = self._request("POST", "/api/v1/library", json=spec)
        except ClientError as exc:
            # The file may be another company's published asset: "held" for using, but not ours to publish.
            if exc.status != 422 or "holds no blob" not in exc.detail:
                raise
            self.upload_blob(path, sha, size)
            answer = self._request("POST", "/api/v1/library", json=spec)
        return LibraryAssetOut.model_validate(answer.json())

    def retract(self, asset_id: str) -> LibraryAssetOut:
        return LibraryAssetOut.model_validate(self._request("POST", f"/api/v1/library/{asset_id}/retract").json())

    def library_usage(self, asset_id: str) -> LibraryUsage:
        return LibraryUsage.model_validate(self._request("GET", f"/api/v1/library/{asset_id}/usage").json())

    def pull(self, asset_id: str, out_dir: Path) -> Path:
        """Save the asset under its file name in ``out_dir``, checked against its sha256."""
        asset = self.library_asset(asset_id)
        name = Path(asset.filename).name
        if name in ("", ".", ".."):
            raise ClientError(0, f"library asset {asset_id} has an unusable file name {asset.filename!r}")
        out_dir.mkdir(parents=True, exist_ok=True)
        dest = out_dir / name
        self._save_checked(f"/api/v1/library/{asset_id}/file", dest, asset.sha256, f"library asset {asset_id}")
        return dest

    def operator_report(self, month: str) -> OperatorReport:
        answer = self._request("GET", "/api/v1/admin/report", params={"month": month})
        return OperatorReport.model_validate(answer.json())
