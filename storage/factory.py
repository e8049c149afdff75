"""Build the configured ``ObjectStore`` from a small, picklable description (workers build their own)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from storage.base import ObjectStore

if TYPE_CHECKING:
    from farm.settings import ServerSettings


@dataclass(frozen=True)
class StoreConfig:
    """Which backend and how to reach it; travels to worker actors."""

    backend: str = "local"
    root: str = ""
    s3_endpoint: str = ""
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_bucket: str = "render-farm"
    s3_region: str | None = None
    s3_secure: bool = False

    def __repr__(self) -> str:  # keeps the secret key out of logs and tracebacks
        return f"StoreConfig(backend={self.backend!r}, root={self.root!r}, s3_endpoint={self.s3_endpoint!r})"


def store_config(settings: ServerSettings) -> StoreConfig:
    """The store description handed to the API and to every worker."""
    if settings.storage.value == "s3":
        return StoreConfig(
            backend="s3",
            s3_endpoint=settings.s3_endpoint,
            s3_access_key=settings.s3_access_key,
            s3_secret_key=settings.s3_secret_key,
            s3_bucket=settings.s3_bucket,
            s3_region=settings.s3_region,
            s3_secure=settings.s3_secure,
        )
    return StoreConfig(backend="local", root=str(settings.data_dir / "objects"))


def worker_store_config(config: StoreConfig) -> StoreConfig | None:
    """What a render node may hold of the store (issue 15): the local directory of the embedded mode (the same
    machine, no secret), else nothing: an S3 store is reached through each assignment's grant
    (``storage.grants``), never with its keys."""
    return config if config.backend == "local" else None


def make_store(config: StoreConfig) -> ObjectStore:
    """The store a process should use."""
    if config.backend == "local":
        from storage.local import LocalDirStore

        return LocalDirStore(Path(config.root))
    if config.backend == "s3":
        from storage.s3 import S3Store

        return S3Store(
            endpoint=config.s3_endpoint,
            access_key=config.s3_access_key,
            secret_key=config.s3_secret_key,
            bucket=config.s3_bucket,
            region=config.s3_region,
            secure=config.s3_secure,
        )
    raise ValueError(f"unknown storage backend {config.backend!r}; use 'local' or 's3'")
