"""Tables. The database is the source of truth; statuses change only through ``farm.lifecycle.transitions``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, validates

from farm.domain import reasons
from farm.domain.states import JobStatus, TaskStatus


class Base(DeclarativeBase):
    pass


def _status(kind: type[JobStatus] | type[TaskStatus]) -> Enum:
    """A status column: stored as its string value (VARCHAR(32), as before), read back as the enum, so code that
    writes a bare string is a type error."""
    return Enum(
        kind, native_enum=False, create_constraint=False, length=32, values_callable=lambda e: [m.value for m in e]
    )


class Company(Base):
    __tablename__ = "companies"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Tenancy (migration 0002_tenancy): fair-share weights, slot guarantees and caps, monthly budgets, prices.
    gpu_share: Mapped[float] = mapped_column(Float, default=1.0, server_default="1")
    cpu_share: Mapped[float] = mapped_column(Float, default=1.0, server_default="1")
    min_slots: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    max_slots: Mapped[int | None] = mapped_column(Integer, nullable=True)
    gpu_hours_budget: Mapped[float | None] = mapped_column(Float, nullable=True)
    cpu_hours_budget: Mapped[float | None] = mapped_column(Float, nullable=True)
    rates: Mapped[dict[str, float]] = mapped_column(JSON, default=dict, server_default="{}")
    # Retention (migration 0012_retention, issue 15): days a finished job and its outputs are kept; None: forever.
    retention_days: Mapped[float | None] = mapped_column(Float, nullable=True)


class User(Base):
    """A person of a company; tokens may name one so usage and audit can say who."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("company_id", "name"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"))
    role: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    user_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)


class Blob(Base):
    __tablename__ = "blobs"
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)  # 64-bit on PostgreSQL too: uploads may exceed 2 GiB
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Job(Base):
    __tablename__ = "jobs"
    # ``farm admin gc`` finds a company's jobs finished before its retention without reading the others (0012); a
    # submit reads the company's unfinished jobs (finished_at null) and its jobs of the last minute (0018).
    __table_args__ = (
        Index("ix_jobs_company_finished", "company_id", "finished_at"),
        Index("ix_jobs_company_created", "company_id", "created_at"),
    )
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[JobStatus] = mapped_column(_status(JobStatus), index=True)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    priority: Mapped[int] = mapped_column(Integer)
    frames: Mapped[str] = mapped_column(Text)
    chunk_size: Mapped[int] = mapped_column(Integer)
    blend_file: Mapped[str] = mapped_column(Text)
    manifest: Mapped[dict[str, dict[str, object]]] = mapped_column(JSON)
    settings: Mapped[dict[str, object]] = mapped_column(JSON)
    frames_total: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Reliability (migration 0003_reliability): a pause that also stops the chunks running now.
    pause_now: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # Integrity (migration 0005_integrity): what the job rendered with that the studio should know about.
    warning: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Progress kept up to date by ``farm.lifecycle.transitions`` (migration 0006_progress): nothing on the path of
    # a finished chunk recounts a job's tasks or frames, so that path does not grow with the job.
    tasks_total: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tasks_runnable: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tasks_in_flight: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tasks_completed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tasks_failed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tasks_canceled: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tasks_paused: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    frames_done: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Issue 15 (migration 0011_metric_totals): what /metrics reads instead of scanning the frames.
    frames_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    last_frame_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Issue 19 (migration 0013_pipeline): what the job waits for (``farm.lifecycle.dependencies``): "" nothing,
    # "job" every chunk waits (an upstream job is unfinished, failed or canceled), "frames" each chunk waits
    # for the same frames of its --frame-match upstream jobs.
    wait: Mapped[str] = mapped_column(String(8), default="", server_default="", index=True)
    # Issue 16 (migration 0015_reason_codes): the status reason as a code of ``farm.domain.reasons`` with its
    # parameters, so the monitor shows it in the viewer's language; "" for a reason written as plain text. Set
    # with the text whenever the text is (the validator below), so they cannot disagree.
    status_reason_code: Mapped[str] = mapped_column(String(64), default="", server_default="")
    status_reason_params: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True, default=None)
    # Who submitted the job: the token's user, else the token's name ("" for jobs older than 0015).
    submitted_by: Mapped[str] = mapped_column(String(200), default="", server_default="")

    @validates("status_reason")
    def _code_the_reason(self, key: str, value: str) -> str:
        text = str(value)[:4000]
        if isinstance(value, reasons.Reason) or text != self.status_reason:  # the same text again keeps its code
            self.status_reason_code, self.status_reason_params = reasons.coded(value)
        return text


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("job_id", "index"),
        Index("ix_tasks_status_job", "status", "job_id"),
        # A job's runnable chunks in order (the dispatcher's candidates), without sorting all of its chunks.
        Index("ix_tasks_job_status_index", "job_id", "status", "index"),
    )
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    frames: Mapped[list[int]] = mapped_column(JSON)
    status: Mapped[TaskStatus] = mapped_column(_status(TaskStatus))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Failed attempts since the chunk was last (re)queued by hand; compared with the job's max_attempts.
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class TaskAttempt(Base):
    __tablename__ = "task_attempts"
    __table_args__ = (UniqueConstraint("task_id", "number"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    node: Mapped[str] = mapped_column(String(200), default="")
    worker: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    blender_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    log_tail: Mapped[str] = mapped_column(Text, default="")
    # Integrity (0005): whose fault a failed attempt was (``farm.lifecycle.outcomes.Fault``), and warnings.
    fault: Mapped[str] = mapped_column(String(16), default="", server_default="")
    warning: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Issue 16 (migration 0015_reason_codes): ``reason`` as a code with parameters (see ``Job``).
    reason_code: Mapped[str] = mapped_column(String(64), default="", server_default="")
    reason_params: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True, default=None)

    @validates("reason")
    def _code_the_reason(self, key: str, value: str) -> str:
        if isinstance(value, reasons.Reason) or str(value) != self.reason:
            self.reason_code, self.reason_params = reasons.coded(value)
        return str(value)


class Frame(Base):
    __tablename__ = "frames"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    frame: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    device: Mapped[str] = mapped_column(String(64), default="CPU")
    render_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # A frame written as one file per view layer: [{layer, key, name, size, sha256}] for every file (the first
    # is also the row's own key); null for one file per frame.
    layers: Mapped[list[dict[str, object]] | None] = mapped_column(JSON, nullable=True, default=None)


class UsageEntry(Base):
    """Append-only metering ledger: corrections are new rows, never updates."""

    __tablename__ = "usage_ledger"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    company_id: Mapped[str] = mapped_column(String(40), index=True)
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    task_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    attempt: Mapped[int | None] = mapped_column(Integer, nullable=True)
    node: Mapped[str] = mapped_column(String(200), default="")
    resource: Mapped[str] = mapped_column(String(32))
    count: Mapped[float] = mapped_column(Float)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    seconds: Mapped[float] = mapped_column(Float)
    outcome: Mapped[str] = mapped_column(String(32))


class WorkerBeat(Base):
    """The scheduler's last word on each render slot (``scheduler.heartbeat``), so every API replica can export
    worker and slot metrics; a row older than the heartbeat lease means the scheduler stopped reporting."""

    __tablename__ = "workers"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    node: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[str] = mapped_column(String(16))
    task_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    beat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Issue 15 (migration 0011_metric_totals): the slot's size, for the resources-in-use gauges.
    cpus: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    gpus: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")


class NodeBeat(Base):
    """Ray nodes as the scheduler last saw them: alive, or lost (died unexpectedly a short while ago)."""

    __tablename__ = "nodes"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    alive: Mapped[bool] = mapped_column(Boolean)
    beat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SchedulerLease(Base):
    """Which scheduler leads (``scheduler.leader``): the holder renews ``beat``; a standby that sees holder, generation
    and beat unchanged for a whole lease takes over with ``generation + 1``. Writes of the scheduler are fenced by
    the generation. ``loop_at``/``loop_seconds`` tell ``/metrics`` of every process how the dispatch loop fares."""

    __tablename__ = "scheduler_lease"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200), default="")
    generation: Mapped[int] = mapped_column(Integer, default=0)
    beat: Mapped[int] = mapped_column(Integer, default=0)
    renewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    loop_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    loop_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    lease_seconds: Mapped[float] = mapped_column(Float, default=0.0)


class BlocklistEntry(Base):
    """Failed attempts of one job on one node; ``blocked_at`` set means the node gets no more of its chunks."""

    __tablename__ = "blocklist"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    node: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(Text, default="")
    blocked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Issue 16 (migration 0015_reason_codes): ``reason`` as a code with parameters (see ``Job``).
    reason_code: Mapped[str] = mapped_column(String(64), default="", server_default="")
    reason_params: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True, default=None)

    @validates("reason")
    def _code_the_reason(self, key: str, value: str) -> str:
        text = str(value)[:2000]
        if isinstance(value, reasons.Reason) or text != self.reason:
            self.reason_code, self.reason_params = reasons.coded(value)
        return text


class JobProduct(Base):
    """What the farm makes from a job once every frame is in (the video a video-output scene asks for); one row per
    job. ``status``: ``checking`` (the scene is being read, shown as nothing), ``ready`` or ``failed`` (``reason``
    says why; the frames stay either way). The bytes live at ``key`` in the store."""

    __tablename__ = "job_products"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    company_id: Mapped[str] = mapped_column(String(40), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="video")
    status: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200), default="")
    key: Mapped[str] = mapped_column(Text, default="")
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[str] = mapped_column(Text, default="")  # e.g. "MPEG4 H264 24 fps, AAC"
    reason: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Issue 16 (migration 0017_product_reason_codes): ``reason`` as a code with parameters (see ``Job``).
    reason_code: Mapped[str] = mapped_column(String(64), default="", server_default="")
    reason_params: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True, default=None)

    @validates("reason")
    def _code_the_reason(self, key: str, value: str) -> str:
        text = str(value)
        if isinstance(value, reasons.Reason) or text != self.reason:
            self.reason_code, self.reason_params = reasons.coded(value)
        return text


class BrowserSessionRow(Base):
    """A logged-in monitor session (issue 17): the cookie carries a random id whose sha256 is the key here, so
    logout, expiry and revocation of the token end the session at once, on every replica."""

    __tablename__ = "browser_sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_id: Mapped[str] = mapped_column(String(40), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class MetricTotal(Base):
    """A counter or histogram kept up to date as things happen (``farm.lifecycle.tallies``), so ``/metrics`` reads
    a few rows instead of aggregating history (issue 15). ``buckets``: cumulative counts, one per upper bound of
    the series' bounds in ``farm.lifecycle.tallies``."""

    __tablename__ = "metric_totals"
    series: Mapped[str] = mapped_column(String(64), primary_key=True)
    company_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    label: Mapped[str] = mapped_column(String(64), primary_key=True, default="")
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[float] = mapped_column(Float, default=0.0)
    buckets: Mapped[list[int]] = mapped_column(JSON, default=list)


# ---- issue 20: the common asset library (migration 0013_library) ---------------------------------------------
class LibraryAsset(Base):
    """A blob a company published for others: stored once in the publisher's ``blobs/`` namespace, never copied.
    ``visibility``: ``all`` (every company) or ``listed`` (the companies in ``library_grants``). A retracted asset
    (``retracted_at`` set) takes no new uses; jobs that already reference it keep it."""

    __tablename__ = "library_assets"
    __table_args__ = (Index("ix_library_assets_sha", "sha256"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(255))
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    licence: Mapped[str] = mapped_column(Text)
    visibility: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    retracted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class LibraryGrant(Base):
    """A company that may use a ``listed`` library asset."""

    __tablename__ = "library_grants"
    asset_id: Mapped[str] = mapped_column(ForeignKey("library_assets.id"), primary_key=True)
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"), primary_key=True)


class LibraryUse(Base):
    """One job that referenced a library asset instead of uploading it (who uses what, per month)."""

    __tablename__ = "library_uses"
    asset_id: Mapped[str] = mapped_column(ForeignKey("library_assets.id"), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    company_id: Mapped[str] = mapped_column(String(40), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


# ---- Issue 19: studio pipeline (migration 0013_pipeline) ------------------------------------------------------


class JobDependency(Base):
    """``job_id`` runs after ``depends_on`` completes (``frame_match``: each frame after the same frame of it)."""

    __tablename__ = "job_dependencies"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    depends_on: Mapped[str] = mapped_column(ForeignKey("jobs.id"), primary_key=True, index=True)
    frame_match: Mapped[bool] = mapped_column(Boolean, default=False)


class Webhook(Base):
    """A company's receiver of job events; ``secret`` signs each delivery (HMAC-SHA256)."""

    __tablename__ = "webhooks"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"), index=True)
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(128))
    events: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WebhookDelivery(Base):
    """The outbox and the delivery log at once: one row per event and webhook, sent by the webhook sender."""

    __tablename__ = "webhook_deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    webhook_id: Mapped[str] = mapped_column(String(40), index=True)
    company_id: Mapped[str] = mapped_column(String(40), index=True)
    event: Mapped[str] = mapped_column(String(32))
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class JobPreset(Base):
    """Named submit settings of a company (``farm preset``), applied under the flags given at submit."""

    __tablename__ = "job_presets"
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    settings: Mapped[dict[str, object]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# ---- Issue 20 item 4: shared presets (migration 0016_shared_presets) -------------------------------------------
class SharedPreset(Base):
    """A company's preset published for others, a copy of its settings at publish time with a description of when
    to use it. ``visibility`` and grants follow the library's rule (``farm.services.library``): ``all`` or
    ``listed``. ``by_platform``: published by a platform admin (shown as the platform's practice)."""

    __tablename__ = "shared_presets"
    __table_args__ = (UniqueConstraint("company_id", "name", name="uq_shared_presets_company_name"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text)
    settings: Mapped[dict[str, object]] = mapped_column(JSON)
    visibility: Mapped[str] = mapped_column(String(16))
    by_platform: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SharedPresetGrant(Base):
    """A company that may use a ``listed`` shared preset."""

    __tablename__ = "shared_preset_grants"
    preset_id: Mapped[str] = mapped_column(ForeignKey("shared_presets.id", ondelete="CASCADE"), primary_key=True)
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"), primary_key=True)
