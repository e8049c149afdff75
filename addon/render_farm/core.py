"""Submission without bpy: runs ``farm.client.FarmClient.submit`` (the CLI's own code) in a background thread.

Nothing here touches ``bpy``, so Blender's UI thread only reads the fields of a :class:`Submission` from a timer,
and the module can be tested outside Blender. Messages are English templates (``str.format`` fields); the
operator translates the template through ``bpy.app.translations`` and then fills the fields in.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# ---- messages (each has a zh_HANS entry in translations.py) ---------------------------------------------------
MSG_UNREACHABLE = "Cannot reach the farm at {url}. Check the farm URL in the add-on preferences and that the farm runs."
MSG_BAD_TOKEN = "The farm refused the token. Paste a valid token in Preferences > Add-ons > Render Farm."  # noqa: S105
MSG_FORBIDDEN = "This token may not submit jobs: {detail}"
MSG_QUOTA = "Your company's quota is used up, try again later or ask your admin: {detail}"
MSG_MISSING = "The scene uses files that do not exist: {files}. Fix the paths, or enable Submit With Missing Files."
MSG_UNSAVED = "Save the .blend file first (File > Save As): the farm renders the saved file."
MSG_DIRTY = "The file has unsaved changes. Save it, or enable Save Before Submit."
MSG_REFUSED = "The farm refused the job: {detail}"
MSG_BAD_FRAMES = "Check the frame range: {detail}"
MSG_BAD_OPTIONS = "Check the job settings: {detail}"
MSG_NO_CAMERA = "The scene has no active camera: set one in Scene properties > Camera, then submit."
MSG_NO_CLIENT = "The add-on's farm client cannot be loaded ({detail}). Reinstall the zip built by farm addon build."
MSG_BUSY = "A submission is already running."
MSG_FAILED = "Submission failed: {detail}"
MSG_SUBMITTED = "Job {job_id} submitted: {frames} frame(s) in {chunks} chunk(s)."
MSG_PACKING = "Render Farm: packing dependencies..."
MSG_UPLOADING = "Render Farm: uploading {done} of {total}"
MSG_CREATING = "Render Farm: creating the job..."

MESSAGES = (
    MSG_UNREACHABLE,
    MSG_BAD_TOKEN,
    MSG_FORBIDDEN,
    MSG_QUOTA,
    MSG_MISSING,
    MSG_UNSAVED,
    MSG_DIRTY,
    MSG_REFUSED,
    MSG_BAD_FRAMES,
    MSG_BAD_OPTIONS,
    MSG_NO_CAMERA,
    MSG_NO_CLIENT,
    MSG_BUSY,
    MSG_FAILED,
    MSG_SUBMITTED,
    MSG_PACKING,
    MSG_UPLOADING,
    MSG_CREATING,
)

Translate = Callable[[str], str]


def _same(text: str) -> str:
    return text


@dataclass
class SubmitRequest:
    """What the panel asks for. An empty ``url`` or ``token`` falls back to FARM_URL/FARM_TOKEN or the CLI config."""

    url: str
    token: str = field(repr=False)
    blend: Path
    frames: str
    name: str
    chunk_size: int = 8
    priority: int = 50
    gpu: bool = False
    output_format: str = "scene"
    allow_missing: bool = False
    after: list[str] = field(default_factory=list)  # issue 19: job ids this one runs after
    frame_match: bool = False
    preset: str = ""  # issue 19: a preset (own, or shared as NAME@PUBLISHER); it decides chunk, priority, ...
    order: str = "sequential"  # issue 19: "preview" renders a spread of frames first

    def options(self) -> dict[str, Any]:
        """The job options sent: with a preset, only the dependencies and a Preview First order (the preset gives
        the rest on the farm, its own order included unless Preview First is chosen here)."""
        chosen: dict[str, Any] = {"after": self.after, "frame_match": self.frame_match}
        if self.preset.strip():
            preview = {"order": self.order} if self.order == "preview" else {}
            return {**chosen, **preview, "preset": self.preset.strip()}
        return {
            **chosen,
            "chunk_size": self.chunk_size,
            "priority": self.priority,
            "output_format": self.output_format,
            "gpu": self.gpu,
            "order": self.order,
        }


def job_ids(text: str) -> list[str]:
    """The panel's "Run After" field (ids separated by commas or spaces) as a list."""
    return [part for part in re.split(r"[\s,]+", text.strip()) if part]


@dataclass
class Outcome:
    """How a submission ended. ``kind`` is ``ok`` or names the problem (``bad_token``, ``unreachable``, ...)."""

    kind: str
    template: str
    args: dict[str, Any] = field(default_factory=dict)
    job_id: str = ""
    monitor_url: str = ""
    frames_total: int = 0
    tasks_total: int = 0
    uploaded_bytes: int = 0
    reused_bytes: int = 0
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.kind == "ok"

    def text(self, translate: Translate = _same) -> str:
        """The message in the UI language: the template is translated, then its fields filled in."""
        return translate(self.template).format(**self.args)


def failure(kind: str, template: str, **args: Any) -> Outcome:
    """An outcome for a problem found before anything was sent."""
    return Outcome(kind=kind, template=template, args=args)


def frames_spec(start: int, end: int, step: int = 1) -> str:
    """``start-end`` (``xSTEP`` when step > 1) in the farm's frame-spec syntax."""
    spec = f"{start}-{end}" if end != start else str(start)
    return f"{spec}x{step}" if step > 1 and end != start else spec


#: The job spec's fields as the panel names them, for refusals found before anything is sent.
PANEL_NAMES = {
    "name": "Job Name",
    "frames": "Frames",
    "chunk_size": "Chunk Size",
    "priority": "Priority",
    "output_format": "Output Format",
    "after": "Run After",
    "preset": "Preset",
    "order": "Frame Order",
}


def normalise_url(url: str) -> str:
    """What an artist types (``farm.studio:8321``, a trailing slash, spaces) as the URL the client needs."""
    url = url.strip().rstrip("/")
    if url and "://" not in url:
        url = "http://" + url
    return url


def check_request(request: SubmitRequest) -> Outcome | None:
    """None when the farm will accept the request's settings, else what to fix; nothing is saved or sent."""
    from farm.client.api import InvalidOptions, check_options

    problem = check_frames(request.frames)
    if problem is not None:
        return problem
    try:
        check_options(request.name, request.frames, **request.options())
    except InvalidOptions as exc:
        detail = "; ".join(f"{PANEL_NAMES.get(f.split('.')[0], f)}: {m}" for f, m in exc.problems)
        return failure("bad_options", MSG_BAD_OPTIONS, detail=detail)
    return None


def check_frames(spec: str) -> Outcome | None:
    """None when the farm will accept ``spec``, else the outcome that says what to fix."""
    from farm.domain.frames import parse_frames
    from farm.errors import BadRequest

    try:
        parse_frames(spec)
    except BadRequest as exc:
        return failure("bad_frames", MSG_BAD_FRAMES, detail=exc.message)
    return None


def human_bytes(count: int) -> str:
    """``12.3 MB`` style sizes for the status bar."""
    size = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def classify(exc: BaseException, url: str) -> Outcome:
    """Turn what the client raised into a message that says what to fix (never containing the token)."""
    from pydantic import ValidationError

    from farm.client import ClientError, FarmUnreachable, MissingFiles

    if isinstance(exc, FarmUnreachable):
        return failure("unreachable", MSG_UNREACHABLE, url=url)
    if isinstance(exc, MissingFiles):
        outcome = failure("missing_files", MSG_MISSING, files=", ".join(exc.missing))
        outcome.missing = list(exc.missing)
        return outcome
    if isinstance(exc, ClientError):
        if exc.status == 401:
            return failure("bad_token", MSG_BAD_TOKEN)
        if exc.status == 403:
            return failure("forbidden", MSG_FORBIDDEN, detail=exc.detail)
        if exc.status == 429 or "quota" in exc.detail.lower():
            return failure("quota", MSG_QUOTA, detail=exc.detail)
        return failure("refused", MSG_REFUSED, detail=exc.detail)
    from farm.client.api import InvalidOptions

    if isinstance(exc, InvalidOptions):
        detail = "; ".join(f"{PANEL_NAMES.get(f.split('.')[0], f)}: {m}" for f, m in exc.problems)
        return failure("bad_options", MSG_BAD_OPTIONS, detail=detail)
    if isinstance(exc, ValidationError):
        details = "; ".join(str(e.get("msg", "")) for e in exc.errors())
        return failure("refused", MSG_REFUSED, detail=details)
    return failure("error", MSG_FAILED, detail=f"{type(exc).__name__}: {exc}")


class Submission:
    """One submission running in a background thread; the UI polls ``phase``, ``sent``, ``total`` and ``outcome``."""

    def __init__(self, request: SubmitRequest) -> None:
        self.request = request
        self.phase = "packing"
        self.sent = 0
        self.total = 0
        self.url = request.url
        self.outcome: Outcome | None = None
        self._thread = threading.Thread(None, self.run, "render-farm-submit", daemon=True)

    def start(self) -> Submission:
        """Run in the background; returns at once."""
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> Outcome | None:
        """Block until the submission ends (or ``timeout`` passes) and return its outcome."""
        self._thread.join(timeout)
        return self.outcome

    @property
    def done(self) -> bool:
        return self.outcome is not None

    @property
    def fraction(self) -> float:
        if self.phase == "creating":
            return 1.0  # everything the farm lacked was sent
        return min(1.0, self.sent / self.total) if self.total else 0.0

    def status_text(self, translate: Translate = _same) -> str:
        """The status-bar line for the current phase."""
        if self.phase == "uploading":
            return translate(MSG_UPLOADING).format(done=human_bytes(self.sent), total=human_bytes(self.total))
        return translate(MSG_CREATING if self.phase == "creating" else MSG_PACKING)

    def run(self) -> None:
        """The thread's body; also callable directly to submit synchronously."""
        try:
            self.outcome = self._submit()
        except Exception as exc:
            self.outcome = classify(exc, self.url)

    def _advance(self, count: int) -> None:
        self.sent += count

    def _total(self, size: int, _files: int) -> None:
        """What the farm lacks, in bytes: the bar's 100 % (nothing to send is done at once)."""
        self.total = size

    def _submit(self) -> Outcome:
        from farm.client import FarmClient
        from farm.client.packing import Pack
        from farm.contract import JobCreate, JobOut, ManifestEntry

        submission = self

        class _Client(FarmClient):
            """The CLI's client, with hooks that tell the UI which phase runs and how much there is to send."""

            def upload_missing(
                self,
                pack: Pack,
                entries: dict[str, ManifestEntry],
                progress: Callable[[int], None] | None = None,
                direct: bool = True,
                on_total: Callable[[int, int], None] | None = None,
            ) -> tuple[int, int, int]:
                submission.phase = "uploading"
                return super().upload_missing(pack, entries, progress, direct, on_total)

            def create_job(self, spec: JobCreate) -> JobOut:
                submission.phase = "creating"
                return super().create_job(spec)

        request = self.request
        with _Client(request.url or None, request.token or None) as client:
            self.url = client.url
            result = client.submit(
                request.blend,
                request.frames,
                name=request.name or None,
                progress=self._advance,
                on_total=self._total,
                allow_missing=request.allow_missing,
                **request.options(),
            )
        job = result.job
        return Outcome(
            kind="ok",
            template=MSG_SUBMITTED,
            args={"job_id": job.id, "frames": job.frames_total, "chunks": job.tasks_total},
            job_id=job.id,
            monitor_url=f"{self.url}/jobs/{job.id}",
            frames_total=job.frames_total,
            tasks_total=job.tasks_total,
            uploaded_bytes=result.uploaded_bytes,
            reused_bytes=result.reused_bytes,
            missing=list(result.missing),
        )
