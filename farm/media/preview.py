"""The preview movie: after a job's last frame, an H.264 MP4 of its frames stored with its outputs.

The scheduler never waits for it: when the dispatcher sees a job complete it calls ``PreviewMaker`` (a quick
database read), which hands the work to a Ray task that asks for no CPU, so it runs even while render slots
hold every core, and lands on any node with the store. The task fetches the frames, runs ``ffmpeg`` (Debian
package ``ffmpeg``) and stores ``outputs/<company>/<job>/preview.mp4``. Frames in a scene-linear format (OpenEXR,
Radiance HDR) are shown through the display-referred images the render nodes stored with the scene's view transform
(``farm.media.thumbnails.display_key``); a frame without one is tone-mapped like its thumbnail. Without ffmpeg, or
when the job was submitted with ``preview: false``, nothing happens. A failed preview is logged, never fatal: the
frames are what the customer pays for.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from farm.contract import JobSettings
from farm.db.engine import Database
from farm.db.models import Frame, Job
from farm.media import on_this_node
from farm.media.thumbnails import DISPLAY_WIDTH, LINEAR_SUFFIXES, display_key
from storage.base import ObjectStore, output_key
from storage.counting import CountingStore, ErrorCounts
from storage.factory import StoreConfig, make_store

log = logging.getLogger(__name__)

PREVIEW_NAME = "preview.mp4"
FPS = 24
MAX_WIDTH = DISPLAY_WIDTH
FFMPEG_TIMEOUT_S = 600.0


def ffmpeg_command(pattern: Path, out: Path, fps: int, exr: bool) -> list[str]:
    """The ffmpeg arguments (a list, never a shell string) that turn a numbered frame sequence into an MP4."""
    command = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-framerate", str(fps)]
    if exr:
        command += ["-apply_trc", "iec61966_2_1"]  # EXR holds linear light; show it as sRGB
    return [
        *command,
        "-i",
        str(pattern),
        # H.264 in yuv420p wants even sides; wider frames are scaled down so previews stay small.
        "-vf",
        f"scale=w='min({MAX_WIDTH},trunc(iw/2)*2)':h=-2,format=yuv420p",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "23",
        "-movflags",
        "+faststart",
        str(out),
    ]


def render_preview(
    store: ObjectStore,
    company_id: str,
    job_id: str,
    frame_keys: list[str],
    fps: int = FPS,
    shas: list[str] | None = None,
) -> str | None:
    """Build and store the preview of these frames (in order); returns its key, or None without ffmpeg. With the
    frames' ``shas``, scene-linear frames are read from their display-referred images where the store has them.

    Raises ``StorageError`` when frames cannot be fetched or the preview cannot be stored, and
    ``RuntimeError`` when ffmpeg fails.
    """
    if shutil.which("ffmpeg") is None:
        log.info("job %s: no ffmpeg on this node, no preview", job_id)
        return None
    if not frame_keys:
        return None
    ext = Path(frame_keys[0]).suffix.lower() or ".png"
    with tempfile.TemporaryDirectory(prefix=f"preview-{job_id}-") as tmp_name:
        tmp = Path(tmp_name)
        # Renumbered 1..N: ffmpeg's image2 demuxer reads a gap-free sequence, and a job may render 1-250x5.
        linear = ext in LINEAR_SUFFIXES
        for i, key in enumerate(frame_keys, start=1):
            if linear:
                # ffmpeg reads neither multi-part EXR nor Blender's multilayer channel names, and would not apply
                # the scene's view transform: each frame becomes an 8-bit PNG, from its display-referred image.
                _display_png(store, key, shas[i - 1] if shas else "", tmp / f"{i:06d}{ext}")
            else:
                store.get_file(key, tmp / f"{i:06d}{ext}")
        if linear:
            ext = ".png"
        out = tmp / PREVIEW_NAME
        command = ffmpeg_command(tmp / f"%06d{ext}", out, fps, exr=False)
        result = subprocess.run(command, capture_output=True, text=True, timeout=FFMPEG_TIMEOUT_S, check=False)
        if result.returncode != 0 or not out.exists():
            raise RuntimeError(f"ffmpeg failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}")
        key = output_key(company_id, job_id, PREVIEW_NAME)
        store.put_file(key, out)
    log.info("job %s: preview of %d frame(s) stored as %s", job_id, len(frame_keys), key)
    return key


def _display_png(store: ObjectStore, key: str, sha: str, path: Path) -> None:
    """Write the scene-linear frame ``key`` as an 8-bit PNG at ``path`` with ``.png``: its display-referred image
    when the render node stored one, else its Combined pass tone-mapped as the thumbnails are."""
    from PIL import Image

    from farm.media.thumbnails import read_linear, tone_map

    out = path.with_suffix(".png")
    view = display_key(key, sha) if sha else ""
    if view and store.stat(view) is not None:
        store.get_file(view, path.with_suffix(".jpg"))
        with Image.open(path.with_suffix(".jpg")) as image:
            image.convert("RGB").save(out, compress_level=1)
        path.with_suffix(".jpg").unlink()
        return
    store.get_file(key, path)
    Image.fromarray(tone_map(read_linear(path)), "RGB").save(out, compress_level=1)
    path.unlink()


def _preview_task(
    config: StoreConfig, company_id: str, job_id: str, frame_keys: list[str], fps: int, shas: list[str] | None = None
) -> tuple[str | None, str, dict[str, int]]:
    """Body of the Ray task: its own store, since stores do not travel between processes. Returns the preview's
    key (None: no ffmpeg, or nothing to show), why it failed (empty when it did not) and its failed store calls."""
    logging.basicConfig(level=logging.INFO)
    failures = ErrorCounts()
    try:
        key = render_preview(CountingStore(make_store(config), failures), company_id, job_id, frame_keys, fps, shas)
    except Exception as exc:
        log.exception("job %s: the preview failed", job_id)
        return None, f"{type(exc).__name__}: {exc}", failures.snapshot()
    return key, "", failures.snapshot()


class PreviewMaker:
    """Called by the dispatcher with the id of a job that just completed; returns at once."""

    def __init__(
        self,
        db: Database,
        store: StoreConfig,
        fps: int = FPS,
        store_errors: Callable[[dict[str, int]], None] | None = None,
    ) -> None:
        self.db = db
        self.store = store
        self.fps = fps
        self.store_errors = store_errors  # issue 15: where the preview tasks' failed store calls are counted
        self.pending: list[Any] = []  # ObjectRefs, kept to log failures and for tests to wait on
        self._remote: Any = None

    def __call__(self, job_id: str) -> None:
        """Start the preview of ``job_id`` in a Ray task unless the job asked for none."""
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job is None or not JobSettings.of(job.settings).preview:
                return
            company_id = job.company_id
            rows = s.execute(select(Frame.key, Frame.sha256).where(Frame.job_id == job_id).order_by(Frame.frame)).all()
        keys, shas = [row[0] for row in rows], [row[1] for row in rows]
        if not keys:
            return
        import ray

        if self._remote is None:
            # No CPU asked: render slots hold every core, and ffmpeg on a few frames is brief.
            self._remote = ray.remote(num_cpus=0, max_retries=1)(_preview_task)
        self._reap()
        # On this (the scheduler's) node: the task carries the store's keys (farm.media.on_this_node).
        task = self._remote.options(**on_this_node())
        self.pending.append(task.remote(self.store, company_id, job_id, keys, self.fps, shas))

    def _reap(self) -> None:
        import ray

        if not self.pending:
            return
        done, self.pending = ray.wait(self.pending, num_returns=len(self.pending), timeout=0)
        for ref in done:
            try:
                _key, error, failures = ray.get(ref)
            except Exception as exc:  # the task itself was lost
                log.warning("a preview task was lost: %s", exc)
                continue
            if error:
                log.warning("a preview failed: %s", error)
            if failures and self.store_errors is not None:
                self.store_errors(failures)
