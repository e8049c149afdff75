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
    # -- limits per company on what a request or a job may ask (issue 17; farm.services.limits) -------------------
    max_request_bytes: int = Field(
        default=64 * 1024**2, ge=1024, description="largest request body other than a blob upload (413 above)"
    )
    max_manifest_entries: int = Field(default=50_000, ge=1, description="files one job's manifest may list")
    max_job_frames: int = Field(default=1_000_000, ge=1, description="frames one job may render")
    max_job_chunks: int = Field(default=100_000, ge=1, description="chunks one job may make")
    max_queued_chunks: int = Field(default=1_000_000, ge=1, description="chunks one company may have waiting")
    max_submits_per_minute: int = Field(default=120, ge=1, description="jobs one company may submit a minute")
    secret_key: str | None = Field(
        default=None,
        description="signs the monitor's cookies; required in the cluster mode, else made once in the data dir",
    )
    bootstrap_admin_token: str | None = None
    migrate_on_start: bool = Field(
        default=True, description="false: wait for `farm migrate` (the chart's hook Job) instead of migrating"
    )
    metrics_token: str | None = Field(default=None, description="bearer token Prometheus sends to /metrics")
    dispatch_interval_s: float = Field(default=0.05, gt=0, le=10)
    task_timeout_s: float = Field(
        default=600.0, gt=0, description="a running chunk whose lease is not renewed for this long is killed"
    )
    blocklist_after: int = Field(
        default=3, ge=1, le=1000, description="failed chunks of one job after which a node gets no more of it"
    )
    bundle_max: int = Field(
        default=32, ge=1, le=256, description="most chunks of a job measured short sent to a slot in one call; 1: off"
    )
    bundle_s: float = Field(default=0.25, ge=0, le=60, description="how long one call's chunks may take, measured")
    ray_object_store_bytes: int = Field(default=128 * 1024**2, ge=78 * 1024**2)
    write_cli_config: bool = True
    renderer: str = Field(default="blender", description="'blender', or 'sleep:SECONDS' for scheduler tests")
    storage_sample_interval_s: float = Field(
        default=600.0, gt=0, description="how often the bytes each company holds are sampled into the ledger"
    )
    # -- store grants (issue 15): render nodes hold no store key, each assignment gets presigned access --------
    store_grant_base_s: int = Field(
        default=900, ge=60, le=604800, description="life of an assignment's input URLs; added to its upload grant's"
    )
    store_grant_per_frame_s: int = Field(
        default=3600, ge=0, le=604800, description="upload grant life per frame of the chunk (7 days at most)"
    )
    fair_share_window_s: float = Field(default=3600.0, gt=0, description="slot-time window of the fair share")
    starvation_s: float = Field(default=600.0, gt=0, description="a chunk waiting this long goes first")
    # -- operations (issue 14): logging, API workers, scheduler lease, health and stopping ----------------------
    log_level: str = Field(
        default="INFO", pattern=r"(?i)^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$", description="server log level"
    )
    api_workers: int = Field(default=1, ge=1, le=64, description="`farm api`: uvicorn worker processes")
    scheduler_lease_s: float = Field(
        default=8.0, ge=1, le=120, description="a standby takes over once the leader's lease lapsed this long"
    )
    scheduler_health_host: str = Field(default="127.0.0.1", description="scheduler health endpoint address")
    scheduler_health_port: int = Field(default=8322, ge=0, le=65535, description="scheduler health port; 0: none")
    shutdown_grace_s: float = Field(
        default=3.0, ge=0, le=60, description="on SIGTERM, how long open HTTP requests and event streams may finish"
    )
    # -- autoscaling (issue 15; scheduler.demand): queued chunks become demand Ray's autoscaler sees ------------
    autoscale: bool = Field(
        default=False, description="cluster mode: request the slots the queue needs from Ray's autoscaler"
    )
    slot_idle_timeout_s: float = Field(
        default=120.0, ge=0, description="with autoscale: a slot idle this long is released so its node can go"
    )
    autoscale_max_cpu_slots: int = Field(default=16, ge=0, le=10_000, description="most CPU slots to ask for")
    autoscale_max_gpu_slots: int = Field(default=8, ge=0, le=10_000, description="most GPU slots; 0: no GPU group")
    cpu_slot_cores: int = Field(default=0, ge=0, le=1024, description="cores of a CPU slot; 0: all a node has left")
    currency: str = Field(
        default="EUR", pattern=r"^[A-Z]{3}$", description="ISO 4217 code of every rate card's prices (issue 16)"
    )

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> ServerSettings:
        if self.mode is Mode.CLUSTER and not self.secret_key:
            raise ValueError("FARM_SECRET_KEY must be set to a random value (16 characters or more) in cluster mode")
        if self.secret_key is not None and len(self.secret_key) < 16:
            raise ValueError("FARM_SECRET_KEY is too short: use a random value of 16 characters or more")
        return self

    @property
    def db_url(self) -> str:
        """The SQLAlchemy URL: ``FARM_DATABASE_URL`` or SQLite in the data dir."""
        return self.database_url or f"sqlite:///{self.data_dir / 'farm.db'}"

    @property
    def cache_dir(self) -> Path:
        """Node-local content-addressed cache of job inputs."""
        return self.worker_cache_dir or self.data_dir / "cache"
