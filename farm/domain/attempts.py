"""How attempts end (``Outcome``, ``Fault``) and the typed messages between the scheduler and a worker actor
(frozen dataclasses; Ray pickles them). Pure: no I/O.

The scheduler sends an ``Assignment``; the worker answers ``poll()`` with a ``PollReport`` (frames stored so far,
progress, the lease's age, the live log) and ``render()`` with the ``AttemptFacts`` of the attempt. Workers report
facts; what they mean is decided by ``farm.lifecycle``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    """How an attempt ended, as the worker (or the scheduler, for a lost worker) reports it."""

    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"
    LOST = "lost"


class Fault(StrEnum):
    """Whose fault a failed attempt was."""

    NONE = ""
    SCENE = "scene"
    NODE = "node"
    STORAGE = "storage"


@dataclass(frozen=True)
class UploadGrant:
    """A signed S3 POST policy: its holder may upload objects whose key starts with ``prefix`` (the job's outputs)
    until ``expires_at``, and nothing else. The signature covers the prefix, so the store refuses other keys."""

    url: str
    fields: dict[str, str]
    prefix: str
    expires_at: float

    def __repr__(self) -> str:  # the signed fields are a bearer credential: never in logs
        return f"UploadGrant(prefix={self.prefix!r}, expires_at={self.expires_at:.0f})"


@dataclass(frozen=True)
class StoreGrant:
    """What one assignment may touch in the object store, without any store credential (issue 15): a presigned
    GET URL per input blob (``blob key -> URL``) and an upload grant for the job's outputs."""

    inputs: dict[str, str]
    upload: UploadGrant
    expires_at: float  # when the input URLs lapse (the upload grant says its own)

    def __repr__(self) -> str:  # presigned URLs are bearer credentials: never in logs
        return f"StoreGrant(inputs={len(self.inputs)}, upload={self.upload!r}, expires_at={self.expires_at:.0f})"


@dataclass(frozen=True)
class Assignment:
    """One chunk for one attempt. ``grant`` is how the worker reaches the store when it holds no store of its own
    (an S3 store: render nodes get no keys); None with the local store of the embedded mode."""

    job_id: str
    task_id: str
    attempt: int
    company_id: str
    blend_file: str
    manifest: dict[str, dict[str, Any]]
    frames: list[int]
    settings: dict[str, Any]
    grant: StoreGrant | None = None


@dataclass(frozen=True)
class StoredLayer:
    """One view layer's file of a frame rendered as one file per layer (a single-layer format, several layers)."""

    layer: str
    key: str
    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class StoredFrame:
    """A frame the worker stored: its key, size and sha256 are those of the uploaded file. A frame rendered as one
    file per view layer lists every file in ``layers`` (the first is also the frame's own key); the worker reports
    the frame only once all of them are stored."""

    task_id: str
    attempt: int
    frame: int
    key: str
    name: str
    size: int
    sha256: str
    device: str = "CPU"
    seconds: float = 0.0
    layers: tuple[StoredLayer, ...] = ()


@dataclass(frozen=True)
class PollReport:
    """The worker's answer to a poll; doubles as a heartbeat."""

    task: str | None
    attempt: int
    events: tuple[StoredFrame, ...]
    progress: float
    beat: float
    lease_age: float
    log: str | None = None
    storage_errors: dict[str, int] = field(default_factory=dict)  # issue 15: the worker's failed store calls so far


@dataclass(frozen=True)
class AttemptFacts:
    """How an attempt ended, as the worker saw it."""

    task_id: str
    attempt: int
    node: str
    worker: str
    resources: dict[str, float]
    outcome: Outcome
    started_at: float
    ended_at: float
    seconds: float
    fault: Fault = Fault.NONE
    exit_code: int | None = None
    reason: str = ""
    warning: str = ""
    log_tail: str = ""
    blender_seconds: float | None = None
    frames: tuple[StoredFrame, ...] = field(default_factory=tuple)
    storage_errors: dict[str, int] = field(default_factory=dict)  # issue 15: the worker's failed store calls so far
