"""The API contract: pydantic models shared by the API, the client SDK, the CLI and the add-on.

``openapi.json`` generated from these is checked in (docs/openapi.json) so a change is visible in review.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from farm.domain.order import FrameOrder
from farm.domain.outputs import MAX_NAME, check_pattern
from farm.domain.states import JobStatus, TaskStatus

SHA256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="lower-case hex sha256")]
_RESOLUTION = re.compile(r"^(\d{1,5})x(\d{1,5})$")


class OutputFormat(StrEnum):
    """``scene`` (the default) keeps the scene's own output settings; the others override the file format (and
    set Blender's media type to match). See ``farm.domain.outputs.FORMATS``."""

    SCENE = "scene"
    PNG = "PNG"
    JPEG = "JPEG"
    TIFF = "TIFF"
    WEBP = "WEBP"
    EXR = "EXR"
    EXR_MULTILAYER = "EXR_MULTILAYER"


class ChunkFailurePolicy(StrEnum):
    """What a job does when one chunk has failed every attempt."""

    FAIL_JOB = "fail-job"  # stop the job at once: the other chunks are canceled
    CONTINUE = "continue"  # render every other chunk; the job ends failed, and `farm retry` requeues the chunk


class Role(StrEnum):
    ARTIST = "artist"
    COMPANY_ADMIN = "company-admin"
    PLATFORM_ADMIN = "platform-admin"


def _refuse_nul(value: object, where: str = "") -> None:
    """No text of a request may hold a NUL character: PostgreSQL cannot store one, and no name or path needs it."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where or 'a value'} must not contain a NUL character (\\u0000)")
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_nul(key, f"the key {where + '.' if where else ''}{str(key)[:60]!r}")
            _refuse_nul(item, f"{where + '.' if where else ''}{str(key)[:60]}")
    elif isinstance(value, list | tuple):
        for item in value:
            _refuse_nul(item, where)


class Strict(BaseModel):
    """What a client sends: unknown fields and NUL characters are refused (422 with the field's name)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: object) -> object:
        _refuse_nul(data)
        return data


class ManifestEntry(Strict):
    sha256: SHA256
    size: int = Field(ge=0)


#: A manifest path's length, and one file or folder name's (Linux: 4096 and 255 bytes; the job folder's own path
#: comes on top).
MAX_PATH_CHARS = 1024
MAX_NAME_BYTES = 255


def check_relative_path(path: str) -> str:
    """A manifest path must stay inside the job folder: relative, no ``..``, no backslashes."""
    if not path or path.startswith("/") or "\\" in path or re.match(r"^[A-Za-z]:", path):
        raise ValueError(f"manifest path {path!r} must be relative to the project folder (no leading '/')")
    parts = PurePosixPath(path).parts
    if any(p in ("..", ".") for p in parts) or "//" in path or path.endswith("/"):
        raise ValueError(f"manifest path {path!r} must not contain '..', '.' or empty parts, nor end with '/'")
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise ValueError(f"manifest path {path!r} must not contain control characters (newlines, tabs, NUL)")
    if len(path) > MAX_PATH_CHARS:
        raise ValueError(f"manifest path {path[:80]!r}… is {len(path)} characters; at most {MAX_PATH_CHARS}")
    if any(len(p.encode()) > MAX_NAME_BYTES for p in parts):
        raise ValueError(f"manifest path {path[:80]!r} has a file or folder name over {MAX_NAME_BYTES} bytes")
    return path


def check_file_tree(paths: Iterable[str]) -> None:
    """The manifest's paths must form a file tree: no path may be both a file and a folder (``a`` and ``a/b``)."""
    files = set(paths)
    for path in files:
        parent = PurePosixPath(path).parent
        while str(parent) != ".":
            if str(parent) in files:
                raise ValueError(f"manifest path {str(parent)!r} is a file, and {path!r} puts it as a folder")
            parent = parent.parent


class JobSettings(BaseModel):
    """How a job renders and what the farm may do with it, as stored with the job (``Job.settings``). Every
    reader goes through this model, so defaults live here once (rows written before a field existed get them)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    output_format: OutputFormat = OutputFormat.SCENE
    output_pattern: str | None = None
    view_layers: tuple[str, ...] = ()
    camera: str | None = None
    job_name: str = ""  # the job's name, for {name} in output names (the worker sees settings, not the job row)
    resolution: str | None = None
    samples: int | None = None
    gpu: bool = False
    allow_cpu_fallback: bool = True
    max_attempts: int = 3
    preview: bool = True
    on_chunk_failure: ChunkFailurePolicy = ChunkFailurePolicy.CONTINUE
    allow_missing: bool = False
    order: FrameOrder = FrameOrder.SEQUENTIAL  # issue 19: preview-first (farm.domain.order)
    estimate_for: str | None = None  # issue 19: these frames are samples of a job of these frames (farm estimate)

    @classmethod
    def of(cls, stored: Mapping[str, object]) -> JobSettings:
        """The settings of a job row."""
        return cls.model_validate(stored)


#: Jobs one job may wait for (``JobCreate.after``).
MAX_AFTER = 50


#: ``JobCreate.preset``: NAME (own, else shared) or NAME@PUBLISHER (a shared preset of that company); issue 20.
PRESET_REF = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}(@[A-Za-z0-9][A-Za-z0-9._-]{0,63})?"


class JobCreate(Strict):
    """What a client submits. ``frames`` uses the spec syntax ``1-250x2,300``."""

    name: str = Field(min_length=1, max_length=200)
    blend_file: str = Field(description="relative path of the .blend inside the manifest")
    manifest: dict[str, ManifestEntry] = Field(min_length=1)
    frames: str = Field(max_length=2000)
    chunk_size: int = Field(default=8, ge=1, le=10_000)
    priority: int = Field(default=50, ge=0, le=100)
    output_format: OutputFormat = Field(
        default=OutputFormat.SCENE, description="'scene' keeps the scene's output settings; others override them"
    )
    output_pattern: str | None = Field(
        default=None,
        max_length=MAX_NAME,
        description="name of each frame file, e.g. 'render/{name}_{camera}_{frame:04d}{ext}' (fields: job, name, "
        "layer, camera, frame, ext); default: the scene's output path",
    )
    view_layers: list[str] = Field(
        default_factory=list, max_length=64, description="render only these view layers (default: every enabled one)"
    )
    camera: str | None = Field(
        default=None, max_length=200, description="render through this camera object (default: the scene's, markers)"
    )
    resolution: str | None = Field(default=None, description="override the scene's resolution, e.g. 64x64")
    samples: int | None = Field(default=None, ge=1, le=65_536, description="override Cycles samples")
    gpu: bool = False
    allow_cpu_fallback: bool = True
    max_attempts: int = Field(default=3, ge=1, le=20)
    on_chunk_failure: ChunkFailurePolicy = ChunkFailurePolicy.CONTINUE
    preview: bool = Field(default=True, description="store an MP4 preview after the last frame (needs ffmpeg)")
    allow_missing: bool = Field(
        default=False,
        description="render even when Blender finds inputs missing after opening the scene (the job shows a warning)",
    )
    # Issue 19: dependencies (farm.lifecycle.dependencies).
    after: list[str] = Field(
        default_factory=list,
        max_length=MAX_AFTER,
        description="ids of jobs of the same company this job waits for (it starts once they all completed)",
    )
    frame_match: bool = Field(
        default=False, description="with 'after': frame N waits only for frame N of those jobs (comp after render)"
    )
    preset: str | None = Field(
        default=None,
        max_length=129,
        description="a preset (farm preset): the company's own NAME first, else a shared one visible to it; "
        "NAME@PUBLISHER names a shared preset of that company; its settings apply where this request sets none",
    )
    order: FrameOrder = Field(
        default=FrameOrder.SEQUENTIAL,
        description="'preview': first, last, then halving the gaps, so the whole shot shows early; then the rest",
    )
    estimate_for: str | None = Field(
        default=None,
        max_length=2000,
        description="this job renders sample frames of a job of these frames: GET /jobs/{id}/estimate extrapolates",
    )

    @field_validator("preset")
    @classmethod
    def _preset(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(PRESET_REF, value):
            raise ValueError(
                f"{value!r} is no preset name: give NAME or NAME@PUBLISHER (letters, digits, '.', '_' or '-', "
                "1 to 64 each, starting with a letter or digit)"
            )
        return value

    @field_validator("after")
    @classmethod
    def _after(cls, value: list[str]) -> list[str]:
        if any(not ident or len(ident) > 40 for ident in value):
            raise ValueError("job ids in 'after' must be 1..40 characters")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _frame_match_needs_after(self) -> JobCreate:
        if self.frame_match and not self.after:
            raise ValueError("frame_match needs the jobs to match in 'after'")
        return self

    @field_validator("manifest")
    @classmethod
    def _paths(cls, value: dict[str, ManifestEntry]) -> dict[str, ManifestEntry]:
        for path in value:
            check_relative_path(path)
        check_file_tree(value)
        return value

    @field_validator("output_pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        return None if value is None else check_pattern(value)

    @field_validator("view_layers")
    @classmethod
    def _layers(cls, value: list[str]) -> list[str]:
        if any(not name or len(name) > 200 for name in value):
            raise ValueError("view layer names must be 1..200 characters")
        return list(dict.fromkeys(value))

    @field_validator("resolution")
    @classmethod
    def _resolution(cls, value: str | None) -> str | None:
        if value is None:
            return None
        match = _RESOLUTION.match(value)
        if match is None or not (4 <= int(match.group(1)) <= 16384 and 4 <= int(match.group(2)) <= 16384):
            raise ValueError(f"resolution {value!r} must be WIDTHxHEIGHT with each side 4..16384, e.g. 1920x1080")
        return value

    @model_validator(mode="after")
    def _blend_in_manifest(self) -> JobCreate:
        check_relative_path(self.blend_file)
        if self.blend_file not in self.manifest:
            raise ValueError(f"blend_file {self.blend_file!r} is not one of the manifest's paths")
        if not self.blend_file.lower().endswith(".blend"):
            raise ValueError(f"blend_file {self.blend_file!r} must be a .blend file")
        return self


class ProductStatus(StrEnum):
    READY = "ready"
    FAILED = "failed"


class ProductOut(BaseModel):
    """What the farm made from the job once every frame was in: the video a video-output scene asks for."""

    kind: str = Field(description="'video'")
    status: ProductStatus
    name: str = Field(description="file name to save it as, e.g. 'shot-010.mp4'")
    size: int
    sha256: str
    detail: str = Field(default="", description="container, codec, frame rate and audio, e.g. 'MPEG4 H264 24 fps'")
    reason: str = Field(default="", description="why it failed (the frames stay available)")


class JobOut(BaseModel):
    id: str
    name: str
    company: str
    status: JobStatus
    priority: int
    frames: str
    chunk_size: int
    output_format: OutputFormat
    output_pattern: str | None = None
    view_layers: list[str] = Field(default_factory=list)
    camera: str | None = None
    resolution: str | None
    samples: int | None
    gpu: bool
    frames_total: int
    frames_done: int
    tasks_total: int
    tasks_done: int
    status_reason: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    warning: str = Field(default="", description="what the studio should know, e.g. inputs rendered as missing")
    actions: list[str] = Field(
        default_factory=list, description="what may be done to the job now (the lifecycle's actions table)"
    )
    product: ProductOut | None = Field(
        default=None, description="the video encoded after the last frame, when the scene's output is video"
    )
    after: list[str] = Field(default_factory=list, description="jobs this one waits for (issue 19)")
    order: FrameOrder = Field(default=FrameOrder.SEQUENTIAL, description="the order frames are rendered in")
    frame_match: bool = Field(default=False, description="frame N waits only for frame N of the jobs in 'after'")
    # Issue 16: who submitted it, and the status reason as a code (farm.domain.reasons) beside its English text.
    submitted_by: str = Field(default="", description="the submitting token's user, else the token's name")
    status_reason_code: str = Field(default="", description="code of status_reason ('' for plain text)")
    status_reason_params: dict[str, Any] | None = Field(default=None, description="parameters of that code")


class JobList(BaseModel):
    jobs: list[JobOut]


class AttemptOut(BaseModel):
    number: int
    node: str
    worker: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    seconds: float | None
    blender_seconds: float | None
    exit_code: int | None
    reason: str
    log_tail: str
    fault: str = Field(
        default="", description="whose fault a failed attempt was: scene (not retried), node, storage (waits)"
    )
    warning: str = ""


class TaskOut(BaseModel):
    id: str
    index: int
    frames: str
    status: TaskStatus
    frames_done: int
    attempts: list[AttemptOut]
    actions: list[str] = Field(
        default_factory=list, description="what may be done to this chunk now: requeue, cancel (issue 16)"
    )


class TaskList(BaseModel):
    tasks: list[TaskOut]


class FrameLayerOut(BaseModel):
    """One view layer's file of a frame written as one file per layer."""

    layer: str
    name: str
    size: int
    sha256: str


class FrameOut(BaseModel):
    frame: int
    name: str
    size: int
    sha256: str
    device: str
    layers: list[FrameLayerOut] = Field(
        default_factory=list,
        description="one file per view layer (a single-layer format with several layers): each file; "
        "GET .../frames/{frame}?layer=NAME returns one",
    )


class FrameList(BaseModel):
    frames: list[FrameOut]


class BlobsMissingRequest(Strict):
    hashes: list[SHA256] = Field(max_length=100_000)
    direct: bool = Field(default=True, description="offer presigned PUT URLs when the store is S3")


class DirectUpload(BaseModel):
    """Where to PUT one blob straight into the object store, and the id to commit it with."""

    url: str
    upload: str


class BlobsMissingResponse(BaseModel):
    missing: list[str]
    uploads: dict[str, DirectUpload] = Field(
        default_factory=dict,
        description="S3 backend: a presigned PUT URL per missing hash; upload there, then POST .../commit",
    )


class BlobCommit(Strict):
    """After a direct upload: the size the client sent, checked with the sha256 before the blob counts."""

    size: int = Field(ge=0)
    upload: str = Field(pattern=r"^[0-9a-f]{32}$", description="the upload id named in the presigned URL's key")


class GcReport(BaseModel):
    """What ``farm admin gc`` deleted (or, in a dry run, would delete)."""

    applied: bool
    retention_days: float
    blobs: list[str] = Field(description="'company/sha256' of each blob no job within the retention references")
    blob_bytes: int
    stale_uploads: int = Field(description="direct uploads never committed, older than a day")
    expired_jobs: list[str] = Field(
        default_factory=list,
        description="'company/job id' of each finished job older than its company's retention_days (gone with "
        "its outputs)",
    )
    output_objects: int = Field(default=0, description="stored files of the expired jobs (frames, thumbnails, videos)")
    output_bytes: int = 0


class FsckRequest(Strict):
    """``POST /api/v1/admin/fsck``: check the database against the object store, and with ``repair`` fix it."""

    repair: bool = Field(default=False, description="delete blob rows without objects and old orphan blobs")
    grace_minutes: float = Field(
        default=60.0,
        ge=0,
        le=525_600,
        description="orphan blob objects younger than this may be uploads in flight: never deleted",
    )


class FsckSizeMismatch(BaseModel):
    key: str
    recorded: int = Field(description="size in the database row")
    stored: int = Field(description="size of the object in the store")


class FsckJob(BaseModel):
    """A job with stored frames that are lost: its chunks must be rendered again."""

    id: str
    company: str
    status: JobStatus
    frames: list[int] = Field(description="frames whose object is missing or has the wrong size")


class FsckReport(BaseModel):
    """What ``farm admin fsck`` found, and with ``repair`` what it fixed. Lists hold object keys."""

    repaired: bool
    grace_minutes: float
    blob_rows_without_objects: list[str]
    blob_objects_without_rows: list[str]
    frames_without_objects: list[str]
    size_mismatches: list[FsckSizeMismatch]
    jobs_with_lost_frames: list[FsckJob] = Field(description="render these again; nothing is changed on them")
    orphans_kept: list[str] = Field(
        description="blob objects without rows left alone: younger than the grace period, or of unknown age"
    )
    deleted_rows: int
    deleted_objects: int
    failed_deletes: int = Field(description="objects the store refused to delete (see the server log)")


class BlobOut(BaseModel):
    sha256: str
    size: int
    created: bool


class UsageRow(BaseModel):
    company: str
    job_id: str | None
    resource: str
    seconds: float = Field(description="resource-seconds: wall seconds times the resource count")
    hours: float
    job_name: str | None = None
    rate: float = Field(default=0.0, description="price per resource-hour from the company's rate card")
    cost: float = 0.0


class UsageCompany(BaseModel):
    """One company's month at a glance: hours per resource, cost, budgets (None = unlimited)."""

    company: str
    gpu_hours: float
    cpu_hours: float
    cost: float
    gpu_hours_budget: float | None
    cpu_hours_budget: float | None


class UsageReport(BaseModel):
    month: str | None
    currency: str = Field(default="EUR", description="currency of every cost and rate here (FARM_CURRENCY)")
    rows: list[UsageRow]
    totals: list[UsageRow]
    companies: list[UsageCompany] = Field(default_factory=list)


class BlockedNode(BaseModel):
    """Failed attempts of a job on one node; ``blocked`` nodes get no more chunks of the job."""

    node: str
    failures: int
    blocked: bool
    blocked_at: datetime | None
    reason: str
    reason_code: str = Field(default="", description="code of reason (issue 16; '' for plain text)")
    reason_params: dict[str, Any] | None = Field(default=None, description="parameters of that code")


class Blocklist(BaseModel):
    job_id: str
    nodes: list[BlockedNode]


class UnblockRequest(Strict):
    node: str | None = Field(default=None, description="one node; every node of the job when left out")


# ---- issue 16: one chunk, priority, bulk --------------------------------------------------------------------
class ChunkActionOut(BaseModel):
    """After ``POST /api/v1/jobs/{job_id}/tasks/{task_id}/requeue|cancel``: the chunk and its job as they are now."""

    changed: bool = Field(description="false when the chunk was already as asked (a no-op)")
    job: JobOut
    task: TaskOut


class JobUpdate(Strict):
    """``PATCH /api/v1/jobs/{job_id}``: what may change on a job that is still to render."""

    priority: StrictInt | None = Field(default=None, ge=0, le=100, description="0-100, higher first")


class BulkAction(StrEnum):
    CANCEL = "cancel"
    PAUSE = "pause"
    RESUME = "resume"
    RETRY = "retry"
    PRIORITY = "priority"


#: The most jobs one bulk request takes.
MAX_BULK_JOBS = 100


class BulkRequest(Strict):
    """``POST /api/v1/jobs/bulk``: one action on many jobs, each through its own door (permission, lock, table)."""

    action: BulkAction
    job_ids: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(min_length=1, max_length=MAX_BULK_JOBS)
    priority: StrictInt | None = Field(default=None, ge=0, le=100, description="the new priority (action 'priority')")
    now: bool = Field(default=False, description="pause: also stop the chunks rendering now")

    @model_validator(mode="after")
    def _priority_with_its_action(self) -> BulkRequest:
        if (self.action is BulkAction.PRIORITY) != (self.priority is not None):
            raise ValueError("'priority' (0-100) is required with the action 'priority', and only with it")
        return self


class BulkOutcome(StrEnum):
    DONE = "done"
    REFUSED = "refused"
    NOT_FOUND = "not-found"


class BulkJobResult(BaseModel):
    job_id: str
    outcome: BulkOutcome
    detail: str = Field(default="", description="why it was refused or not found")
    status: JobStatus | None = Field(default=None, description="the job's status after the action")


class BulkResult(BaseModel):
    action: BulkAction
    done: int
    refused: int
    not_found: int
    jobs: list[BulkJobResult] = Field(description="one per job id, in the order given (duplicates once)")


class LogOut(BaseModel):
    job_id: str
    text: str


class Health(BaseModel):
    status: str
    version: str


class ErrorOut(BaseModel):
    """Every error answer: what went wrong and what to do, in one sentence or two."""

    detail: str
    missing: list[str] | None = Field(default=None, description="409 on a job: the blobs to upload first")


class ValidationErrorOut(BaseModel):
    """422: ``detail`` says what to fix in one line; ``errors`` lists each problem with where it is."""

    detail: str
    errors: list[dict[str, Any]] = Field(default_factory=list)


# ---- tenancy: companies, tokens ------------------------------------------------------------------------------
COMPANY_NAME_RULE = "2-64 characters: letters, digits, '.', '_' or '-', starting with a letter or digit"
_COMPANY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
RESOURCES = ("cpu", "gpu")


def check_company_name(name: str) -> str:
    """Company names appear in URLs, metrics labels and CSV files: keep them short and plain."""
    if not 2 <= len(name) <= 64:
        raise ValueError(f"company name {name!r} is {len(name)} characters long; it must be {COMPANY_NAME_RULE}")
    if not _COMPANY_NAME.match(name):
        raise ValueError(f"company name {name!r} is not allowed; it must be {COMPANY_NAME_RULE}")
    return name


def check_rates(rates: dict[str, float] | None) -> dict[str, float] | None:
    """A rate card prices resource-hours of known resources; prices are never negative."""
    if rates is None:
        return None
    for resource, price in rates.items():
        if resource not in RESOURCES:
            raise ValueError(f"rate card names resource {resource!r}; known resources: {', '.join(RESOURCES)}")
        if price < 0:
            raise ValueError(f"rate for {resource!r} is {price}; prices must be 0 or more")
    return rates


#: Numbers a company's settings take: real numbers in a sane range (``false`` is not 0, 5e-324 is not a share,
#: 1e307 hours is not a budget).
Share = Annotated[float, Field(strict=True, ge=0.001, le=1_000_000, allow_inf_nan=False)]
Hours = Annotated[float, Field(strict=True, ge=0, le=10_000_000, allow_inf_nan=False)]


class CompanyLimits(Strict):
    """The tenancy settings of a company; on update, only the fields sent change (null = unlimited)."""

    gpu_share: Share | None = Field(default=None, description="fair-share weight on GPUs (0.001 to 1,000,000)")
    cpu_share: Share | None = Field(default=None, description="fair-share weight on CPUs (0.001 to 1,000,000)")
    min_slots: StrictInt | None = Field(default=None, ge=0, le=100_000, description="slots guaranteed promptly")
    max_slots: StrictInt | None = Field(default=None, ge=0, le=100_000, description="burst cap (null: none)")
    gpu_hours_budget: Hours | None = Field(default=None, description="GPU-hours per month (null: none)")
    cpu_hours_budget: Hours | None = Field(default=None, description="CPU-hours per month (null: none)")
    rates: dict[str, float] | None = Field(default=None, description="price per resource-hour, e.g. {'gpu': 1.2}")
    retention_days: float | None = Field(
        default=None,
        ge=1,
        le=36_500,
        allow_inf_nan=False,
        description="days finished jobs and their outputs are kept; `farm admin gc` expires older ones (null: keep)",
    )

    @field_validator("rates")
    @classmethod
    def _rates(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        return check_rates(value)

    @model_validator(mode="after")
    def _slots(self) -> CompanyLimits:
        if self.min_slots is not None and self.max_slots is not None and self.min_slots > self.max_slots:
            raise ValueError(f"min_slots ({self.min_slots}) must not exceed max_slots ({self.max_slots})")
        return self


class CompanyCreate(CompanyLimits):
    name: str

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_company_name(value)


class CompanyUpdate(CompanyLimits):
    """PATCH body: fields left out keep their value; ``max_slots``/budgets set to null mean unlimited."""


class CompanyOut(BaseModel):
    id: str
    name: str
    gpu_share: float
    cpu_share: float
    min_slots: int
    max_slots: int | None
    gpu_hours_budget: float | None
    cpu_hours_budget: float | None
    rates: dict[str, float]
    created_at: datetime
    retention_days: float | None = None


class CompanyList(BaseModel):
    companies: list[CompanyOut]


class TokenCreate(Strict):
    company: str = Field(description="the company the token acts for")
    role: Role = Role.ARTIST
    name: str = Field(default="", max_length=200, description="a label, e.g. 'anna laptop'")
    user: str | None = Field(default=None, min_length=1, max_length=64, description="the person it belongs to")
    expires_in_days: int | None = Field(default=90, ge=1, le=3650, description="null: never expires")


class TokenOut(BaseModel):
    id: str
    company: str
    role: Role
    name: str
    user: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="the token itself: shown this once, only its hash is kept")


class TokenList(BaseModel):
    tokens: list[TokenOut]


class WhoAmI(BaseModel):
    token_id: str
    company: str
    role: Role


# ---- issue 20: the common asset library and the operator's report ---------------------------------------------
_LIBRARY_TAG = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\s,]+$")]


class LibraryPublish(Strict):
    """Publish a blob the company uploaded; ``to`` empty: every company, else only the companies named."""

    sha256: SHA256
    name: str = Field(min_length=1, max_length=200, description="what studios browse by, e.g. 'studio HDRI sky'")
    filename: str = Field(
        min_length=1,
        max_length=255,
        pattern=r'^[^/\\\x00-\x1f\x7f"]+$',
        description="the file's name when pulled (no folders, quotes or control characters)",
    )
    licence: str = Field(min_length=1, max_length=20_000, description="the terms others use the asset under")
    tags: list[_LIBRARY_TAG] = Field(default_factory=list, max_length=32)
    to: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=1000, description="company names that may use it; empty: every company"
    )


class LibraryAssetOut(BaseModel):
    id: str
    name: str
    filename: str
    sha256: str
    size: int
    tags: list[str]
    licence: str
    publisher: str = Field(description="the company that published it")
    visibility: str = Field(description="'all' (every company) or 'listed'")
    to: list[str] | None = Field(default=None, description="the companies listed (shown to the publisher only)")
    created_at: datetime
    retracted_at: datetime | None = None


class LibraryList(BaseModel):
    assets: list[LibraryAssetOut]


class LibraryMonth(BaseModel):
    month: str
    jobs: int = Field(description="jobs that referenced the asset instead of uploading it")
    companies: int = Field(description="distinct companies among those jobs")
    bytes_avoided: int = Field(
        description="the asset's size for each company (not the publisher) that used it for the first time this month"
    )


class LibraryUsage(BaseModel):
    asset_id: str
    name: str
    months: list[LibraryMonth]


class PoolCompany(BaseModel):
    company: str
    slot_hours: float
    share: float = Field(description="the company's slot-hours over the pool's used slot-hours (0..1)")
    cost: float = Field(description="what the rate card charged the company for this pool's attempts")


class PoolReport(BaseModel):
    pool: str = Field(description="'gpu' or 'cpu'")
    capacity_slot_hours: float
    used_slot_hours: float
    utilisation: float = Field(description="used over capacity (0 when no capacity was sampled)")
    idle_hours: float = Field(description="capacity minus used slot-hours, never below 0")
    queue_wait_p50_s: float | None
    queue_wait_p95_s: float | None
    attempts: int
    failed_attempts: int = Field(description="attempts that failed (scene and node faults)")
    node_failed_attempts: int = Field(description="failed attempts blamed on a node: the platform's")
    lost_attempts: int = Field(description="attempts lost with their worker or a restart (never billed)")
    platform_slot_hours: float = Field(description="slot-hours of node-failed and lost attempts")
    unbilled_slot_hours: float = Field(description="slot-hours of lost attempts: no ledger row, nobody paid")
    cost_recovered: float
    companies: list[PoolCompany]


class LibraryReuse(BaseModel):
    assets_live: int
    uses: int = Field(description="(job, asset) references made this month")
    uploads_avoided: int = Field(description="(company, asset) pairs first used this month, publisher excluded")
    bytes_avoided: int = Field(description="the sizes of those first uses: bytes neither uploaded nor stored again")


class OperatorReport(BaseModel):
    month: str
    currency: str = Field(default="EUR", description="currency of every cost here (FARM_CURRENCY)")
    pools: list[PoolReport]
    library: LibraryReuse


# ---- Issue 19: studio pipeline (webhooks, presets, resubmit) ---------------------------------------------------


class WebhookEvent(StrEnum):
    QUEUED = "queued"
    STARTED = "started"
    FIRST_FRAME = "first_frame"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"
    TEST = "test"


#: The job events a webhook gets unless it names some.
JOB_EVENTS: tuple[WebhookEvent, ...] = tuple(e for e in WebhookEvent if e is not WebhookEvent.TEST)


class WebhookCreate(Strict):
    url: str = Field(min_length=8, max_length=2000, description="http(s) URL that receives POSTed JSON events")
    events: list[WebhookEvent] = Field(
        default_factory=lambda: list(JOB_EVENTS),
        min_length=1,
        max_length=len(WebhookEvent),
        description="the job events to send (default: all)",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^\s/?#@]+(/[^\s]*)?", value):
            raise ValueError("url must be http:// or https:// followed by a host (no spaces, no user@)")
        return value

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[WebhookEvent]) -> list[WebhookEvent]:
        return list(dict.fromkeys(value))


class WebhookOut(BaseModel):
    id: str
    company: str
    url: str
    events: list[WebhookEvent]
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="HMAC-SHA256 key of the X-Farm-Signature header: shown this once")


class WebhookList(BaseModel):
    webhooks: list[WebhookOut]


class WebhookDeliveryOut(BaseModel):
    id: int
    webhook_id: str
    event: str
    job_id: str | None
    status: str = Field(description="pending (will be sent or retried), delivered, or failed (gave up)")
    attempts: int
    last_code: int | None
    last_error: str
    created_at: datetime
    next_at: datetime | None
    delivered_at: datetime | None


class WebhookDeliveryList(BaseModel):
    deliveries: list[WebhookDeliveryOut]


#: What a preset may hold: the job settings a submit takes (the scene, frames and dependencies are per job).
PRESET_FIELDS = (
    "chunk_size",
    "priority",
    "output_format",
    "output_pattern",
    "view_layers",
    "camera",
    "resolution",
    "samples",
    "gpu",
    "allow_cpu_fallback",
    "max_attempts",
    "on_chunk_failure",
    "preview",
    "order",
)


class PresetSettings(Strict):
    """Submit settings a preset holds; absent fields are not part of the preset."""

    chunk_size: int | None = Field(default=None, ge=1, le=10_000)
    priority: int | None = Field(default=None, ge=0, le=100)
    output_format: OutputFormat | None = None
    output_pattern: str | None = Field(default=None, max_length=MAX_NAME)
    view_layers: list[str] | None = Field(default=None, max_length=64)
    camera: str | None = Field(default=None, max_length=200)
    resolution: str | None = None
    samples: int | None = Field(default=None, ge=1, le=65_536)
    gpu: bool | None = None
    allow_cpu_fallback: bool | None = None
    max_attempts: int | None = Field(default=None, ge=1, le=20)
    on_chunk_failure: ChunkFailurePolicy | None = None
    preview: bool | None = None
    order: FrameOrder | None = None

    @field_validator("output_pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        return None if value is None else check_pattern(value)

    @field_validator("resolution")
    @classmethod
    def _resolution(cls, value: str | None) -> str | None:
        return None if value is None else JobCreate._resolution(value)


PRESET_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class PresetSave(Strict):
    settings: PresetSettings = Field(default_factory=PresetSettings)
    from_job: str | None = Field(
        default=None, max_length=40, description="start from this job's settings; 'settings' override them"
    )


class PresetOut(BaseModel):
    name: str
    settings: PresetSettings
    created_at: datetime
    updated_at: datetime


class PresetList(BaseModel):
    presets: list[PresetOut]


# Issue 20 item 4: shared presets (farm.services.presets_shared).
class PresetPublish(Strict):
    """Publish one of the company's presets for others (a copy of its settings now)."""

    description: str = Field(min_length=1, max_length=2000, description="when to use it: the scenes and purposes")
    to: list[str] = Field(
        default_factory=list, max_length=1000, description="company names that may use it; empty: every company"
    )


class SharedPresetOut(BaseModel):
    name: str
    ref: str = Field(description="NAME@PUBLISHER: names this shared preset in farm submit --preset")
    publisher: str
    by_platform: bool = Field(description="published by a platform admin: the platform's recommended practice")
    mine: bool = Field(description="published by the caller's company")
    description: str
    settings: PresetSettings
    visibility: str = Field(description="all (every company) or listed")
    to: list[str] | None = Field(default=None, description="the companies it is listed for (publisher only)")
    created_at: datetime
    updated_at: datetime


class SharedPresetList(BaseModel):
    presets: list[SharedPresetOut]


class ResubmitRequest(Strict):
    """A new job from a finished one's inputs (nothing uploaded again); absent fields keep the old job's."""

    frames: str | None = Field(default=None, max_length=2000)
    samples: int | None = Field(default=None, ge=1, le=65_536)
    resolution: str | None = None
    priority: int | None = Field(default=None, ge=0, le=100)
    chunk_size: int | None = Field(default=None, ge=1, le=10_000)
    name: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("resolution")
    @classmethod
    def _resolution(cls, value: str | None) -> str | None:
        return None if value is None else JobCreate._resolution(value)


class EstimateOut(BaseModel):
    """What a job of ``frames`` would cost, extrapolated from the sample job's metered frames (``farm estimate``)."""

    job_id: str = Field(description="the sample job (metered like any render)")
    currency: str = Field(default="EUR", description="currency of rate and costs (FARM_CURRENCY)")
    status: JobStatus
    frames: str = Field(description="the frames of the job estimated")
    frames_total: int
    sampled_frames: list[int]
    seconds_per_frame: float = Field(description="metered slot-seconds per sampled frame (scene load included)")
    resource: str = Field(description="cpu or gpu: what the samples were metered as")
    resource_hours: float
    resource_hours_low: float
    resource_hours_high: float
    rate: float = Field(description="the company's price per resource-hour")
    cost: float
    cost_low: float
    cost_high: float
    ready: bool = Field(description="false until the sample job completed")
