"""Settings of the server processes (env prefix ``FARM_``), validated at start and passed in."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Mode(StrEnum):
    EMBEDDED = "embedded"
    CLUSTER = "cluster"


class StorageBackend(StrEnum):
    LOCAL = "local"
    S3 = "s3"


DEFAULT_SECRET = "embedded-dev-secret-change-me"  # noqa: S105 - refused outside the embedded mode


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/render-farm`` (``~/.local/share/render-farm``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "render-farm"


class ServerSettings(BaseSettings):
    """Everything ``farm server`` / ``farm api`` / ``farm scheduler`` read from the environment."""

    model_config = SettingsConfigDict(env_prefix="FARM_", extra="ignore")

    mode: Mode = Mode.EMBEDDED
    data_dir: Path = Field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    port: int = Field(default=8321, ge=0, le=65535)
    database_url: str | None = Field(default=None, description="default: sqlite in the data dir")
    storage: StorageBackend = StorageBackend.LOCAL
    s3_endpoint: str = "127.0.0.1:9000"
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_bucket: str = "render-farm"
    s3_region: str | None = None
    s3_secure: bool = False
    ray_address: str | None = None
    slots: int | None = Field(
        default=None, ge=1, le=256, description="embedded: render slots on this machine"
    )
    worker_cache_dir: Path | None = None
    worker_cache_bytes: int = Field(default=20 * 1024**3, ge=0)
    max_upload_bytes: int = Field(default=20 * 1024**3, ge=1)
    secret_key: str = DEFAULT_SECRET
    bootstrap_admin_token: str | None = None
    metrics_token: str | None = Field(default=None, description="bearer token Prometheus sends to /metrics")
    dispatch_interval_s: float = Field(default=0.05, gt=0, le=10)
    task_timeout_s: float = Field(
        default=600.0, gt=0, description="a running chunk whose lease is not renewed for this long is killed"
    )
    blocklist_after: int = Field(
        default=3, ge=1, le=1000, description="failed chunks of one job after which a node gets no more of it"
    )
    ray_object_store_bytes: int = Field(default=128 * 1024**2, ge=78 * 1024**2)
    write_cli_config: bool = True
    renderer: str = Field(default="blender", description="'blender', or 'sleep:SECONDS' for scheduler tests")
    storage_sample_interval_s: float = Field(
        default=600.0, gt=0, description="how often the bytes each company holds are sampled into the ledger"
    )
    fair_share_window_s: float = Field(default=3600.0, gt=0, description="slot-time window of the fair share")
    starvation_s: float = Field(default=600.0, gt=0, description="a chunk waiting this long goes first")

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> ServerSettings:
        if self.mode is Mode.CLUSTER and self.secret_key == DEFAULT_SECRET:
            raise ValueError("FARM_SECRET_KEY must be set to a random value outside the embedded mode")
        return self

    @property
    def db_url(self) -> str:
        """The SQLAlchemy URL: ``FARM_DATABASE_URL`` or SQLite in the data dir."""
        return self.database_url or f"sqlite:///{self.data_dir / 'farm.db'}"

    @property
    def cache_dir(self) -> Path:
        """Node-local content-addressed cache of job inputs."""
        return self.worker_cache_dir or self.data_dir / "cache"
