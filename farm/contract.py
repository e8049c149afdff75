"""The API contract: pydantic models shared by the API, the client SDK, the CLI and the add-on.

``openapi.json`` generated from these is checked in (docs/openapi.json) so a change is visible in review.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from farm.states import JobStatus, TaskStatus

SHA256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="lower-case hex sha256")]
_RESOLUTION = re.compile(r"^(\d{1,5})x(\d{1,5})$")


class OutputFormat(StrEnum):
    PNG = "PNG"
    EXR = "EXR"


class Role(StrEnum):
    ARTIST = "artist"
    COMPANY_ADMIN = "company-admin"
    PLATFORM_ADMIN = "platform-admin"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ManifestEntry(Strict):
    sha256: SHA256
    size: int = Field(ge=0)


def check_relative_path(path: str) -> str:
    """A manifest path must stay inside the job folder: relative, no ``..``, no backslashes."""
    if not path or path.startswith("/") or "\\" in path or re.match(r"^[A-Za-z]:", path):
        raise ValueError(f"manifest path {path!r} must be relative to the project folder (no leading '/')")
    parts = PurePosixPath(path).parts
    if any(p in ("..", ".") for p in parts) or "//" in path:
        raise ValueError(f"manifest path {path!r} must not contain '..', '.' or empty parts")
    return path


class JobCreate(Strict):
    """What a client submits. ``frames`` uses the spec syntax ``1-250x2,300``."""

    name: str = Field(min_length=1, max_length=200)
    blend_file: str = Field(description="relative path of the .blend inside the manifest")
    manifest: dict[str, ManifestEntry] = Field(min_length=1)
    frames: str = Field(max_length=2000)
    chunk_size: int = Field(default=8, ge=1, le=10_000)
    priority: int = Field(default=50, ge=0, le=100)
    output_format: OutputFormat = OutputFormat.PNG
    resolution: str | None = Field(default=None, description="override the scene's resolution, e.g. 64x64")
    samples: int | None = Field(default=None, ge=1, le=65_536, description="override Cycles samples")
    gpu: bool = False
    allow_cpu_fallback: bool = True
    max_attempts: int = Field(default=3, ge=1, le=20)

    @field_validator("manifest")
    @classmethod
    def _paths(cls, value: dict[str, ManifestEntry]) -> dict[str, ManifestEntry]:
        for path in value:
            check_relative_path(path)
        return value

    @field_validator("resolution")
    @classmethod
    def _resolution(cls, value: str | None) -> str | None:
        if value is None:
            return None
        match = _RESOLUTION.match(value)
        if match is None or not (4 <= int(match.group(1)) <= 16384 and 4 <= int(match.group(2)) <= 16384):
            raise ValueError(
                f"resolution {value!r} must be WIDTHxHEIGHT with each side 4..16384, e.g. 1920x1080"
            )
        return value

    @model_validator(mode="after")
    def _blend_in_manifest(self) -> JobCreate:
        check_relative_path(self.blend_file)
        if self.blend_file not in self.manifest:
            raise ValueError(f"blend_file {self.blend_file!r} is not one of the manifest's paths")
        if not self.blend_file.lower().endswith(".blend"):
            raise ValueError(f"blend_file {self.blend_file!r} must be a .blend file")
        return self


class JobOut(BaseModel):
    id: str
    name: str
    company: str
    status: JobStatus
    priority: int
    frames: str
    chunk_size: int
    output_format: OutputFormat
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


class TaskOut(BaseModel):
    id: str
    index: int
    frames: str
    status: TaskStatus
    frames_done: int
    attempts: list[AttemptOut]


class TaskList(BaseModel):
    tasks: list[TaskOut]


class FrameOut(BaseModel):
    frame: int
    name: str
    size: int
    sha256: str
    device: str


class FrameList(BaseModel):
    frames: list[FrameOut]


class BlobsMissingRequest(Strict):
    hashes: list[SHA256] = Field(max_length=100_000)


class BlobsMissingResponse(BaseModel):
    missing: list[str]


class BlobOut(BaseModel):
    sha256: str
    size: int
    created: bool


class UsageRow(BaseModel):
    company: str
    job_id: str | None
    resource: str
    seconds: float
    hours: float


class UsageReport(BaseModel):
    month: str | None
    rows: list[UsageRow]
    totals: list[UsageRow]


class LogOut(BaseModel):
    job_id: str
    text: str


class Health(BaseModel):
    status: str
    version: str


class ErrorOut(BaseModel):
    detail: str
