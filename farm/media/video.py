"""The video product: when every frame of a job whose scene's output is a video is in, encode that video.

The render chunks of a video-output scene write lossless image frames (a chunk cannot append to a movie); the
video the scene asks for is made once, after the last frame, like the preview (``farm.media.preview``): the
dispatcher calls ``VideoMaker`` with the completed job's id, which marks the job's product ``checking`` and hands
the work to a Ray task that asks for no CPU. The task fetches the .blend, reads the scene's video settings in a
Blender child (``farm.media.video_scene``); for a video scene it lays out the job's inputs, mixes the sequencer's
sound down to a WAV over the frames' range, fetches the frames, runs ffmpeg with the arguments
``farm.media.video_ffmpeg.encode_command`` maps from the scene, and stores the video next to the frames under
``outputs/<company>/<job>/.product/``. It reports facts; ``VideoMaker.collect`` (a periodic hook of the
dispatch loop) records them: the product ``ready`` or ``failed`` with the reason (the frames stay either way),
and the CPU-seconds of Blender and ffmpeg in the usage ledger. Jobs whose format was overridden (``--format``)
asked for image files, and get no video.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from farm.clock import Clock
from farm.contract import JobSettings, OutputFormat, check_relative_path
from farm.db.engine import Database
from farm.db.models import Frame, Job
from farm.domain import reasons
from farm.domain.inputs import input_owner
from farm.media import on_this_node
from farm.media.video_ffmpeg import UnsupportedVideo, VideoSettings, encode_command, frame_rate
from farm.services import products
from farm.services.products import ProductFacts
from storage.base import ObjectStore, blob_key, output_key
from storage.counting import CountingStore, ErrorCounts
from storage.factory import StoreConfig, make_store

log = logging.getLogger(__name__)

PRODUCT_DIR = ".product"  # a folder no frame name can take (output names never start with a dot)
BLENDER_TIMEOUT_S = 600.0
FFMPEG_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class VideoJob:
    """What the encode task needs to know about a job (read from the database by the scheduler)."""

    job_id: str
    company_id: str
    name: str
    blend_file: str
    manifest: dict[str, dict[str, Any]]
    frames: list[tuple[int, str]]  # (frame number, object key), in frame order


def product_name(job_name: str, extension: str) -> str:
    """The file name the video is downloaded as: the job's name made safe for any file system."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", job_name).strip("._-")[:120]
    return f"{stem or 'video'}{extension}"


def frame_step(frames: list[int]) -> int:
    """The step of an evenly spaced frame list (``1-250x5`` gives 5); 1 for anything else."""
    if len(frames) < 2:
        return 1
    step = frames[1] - frames[0]
    regular = step > 0 and all(b - a == step for a, b in itertools.pairwise(frames))
    return step if regular else 1


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _tail(text: str, limit: int = 1500) -> str:
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-limit:]


def read_scene(blend: Path, out: Path, mixdown: Path | None = None, start: int = 1, end: int = 1) -> dict[str, Any]:
    """Run ``farm.media.video_scene`` in a Blender child; returns its answer. Raises ``RuntimeError`` on failure."""
    import json

    args: dict[str, Any] = {"blend": str(blend), "out": str(out)}
    if mixdown is not None:
        args |= {"mixdown": str(mixdown), "start": start, "end": end}
    command = [sys.executable, "-m", "farm.media.video_scene", json.dumps(args)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=BLENDER_TIMEOUT_S, check=False)
    if result.returncode != 0 or not out.exists():
        raise RuntimeError(f"Blender could not read the scene's video settings: {_tail(result.stderr)}")
    answer: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return answer


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def _describe(v: VideoSettings, rate_fps: float, audio: bool) -> str:
    sound = f", {v.audio_codec} audio" if audio else ", no audio"
    return f"{v.container} {v.effective_codec} {rate_fps:g} fps{sound}"


def _may_be_video(blend: Path) -> bool:
    """Whether the .blend's scene may ask for video, read from the file without Blender (blender-asset-tracer's
    reader, milliseconds); a file that reader cannot read goes to Blender, which says what it is."""
    from farm.client.scene_info import SceneUnreadable
    from farm.client.scene_info import read_scene as read_saved_scene

    try:
        return read_saved_scene(blend).media_type == "VIDEO"
    except SceneUnreadable:
        return True


def make_video(store: ObjectStore, job: VideoJob) -> ProductFacts:
    """Encode the job's video when its scene asks for one; every failure comes back as facts with a reason."""
    started = datetime.now(UTC)
    cpu_before = _cpu_seconds()
    node = socket.gethostname()

    def facts(**kw: Any) -> ProductFacts:
        return ProductFacts(
            job_id=job.job_id,
            node=node,
            cpu_seconds=max(0.0, _cpu_seconds() - cpu_before),
            started_at=started,
            ended_at=datetime.now(UTC),
            **kw,
        )

    with tempfile.TemporaryDirectory(prefix=f"video-{job.job_id}-") as tmp_name:
        tmp = Path(tmp_name)
        project = tmp / "project"
        blend = project / check_relative_path(job.blend_file)
        blend.parent.mkdir(parents=True, exist_ok=True)
        entry = job.manifest[job.blend_file]
        store.get_file(blob_key(input_owner(job.company_id, entry), str(entry["sha256"])), blend)  # issue 20
        if not _may_be_video(blend):
            return facts(video=False)  # read without Blender: no Blender start for every job of stills
        scene = read_scene(blend, tmp / "scene.json")
        if not scene.get("video"):
            return facts(video=False)
        try:
            return _encode(store, job, tmp, project, blend, scene, facts)
        except (UnsupportedVideo, RuntimeError, subprocess.TimeoutExpired) as exc:
            return facts(video=True, reason=str(exc))


def _encode(
    store: ObjectStore,
    job: VideoJob,
    tmp: Path,
    project: Path,
    blend: Path,
    scene: dict[str, Any],
    facts: Callable[..., ProductFacts],
) -> ProductFacts:
    settings = VideoSettings.from_json(scene.get("settings", {}))
    if shutil.which("ffmpeg") is None:
        return facts(video=True, reason=reasons.make("video_no_ffmpeg"))  # issue 16: coded, shown in any language
    if not job.frames:
        return facts(video=True, reason=reasons.make("video_no_frames"))
    numbers = [number for number, _key in job.frames]
    step = frame_step(numbers)
    rate = frame_rate(settings.fps, settings.fps_base, step)
    audio: Path | None = None
    if settings.has_audio and scene.get("sound"):
        # The sounds are inputs of the job: lay out the rest of the manifest where the .blend expects them.
        for path, entry in job.manifest.items():
            dest = project / check_relative_path(path)
            if dest != blend:
                dest.parent.mkdir(parents=True, exist_ok=True)
                store.get_file(blob_key(input_owner(job.company_id, entry), str(entry["sha256"])), dest)
        audio = tmp / "sound.wav"
        end = numbers[0] + len(numbers) * step - 1
        mixed = read_scene(blend, tmp / "mixdown.json", audio, numbers[0], end)
        if not mixed.get("mixed") or not audio.exists():
            raise RuntimeError("Blender could not mix down the sequencer's sound")
    frames_dir = tmp / "frames"
    frames_dir.mkdir()
    ext = Path(job.frames[0][1]).suffix.lower() or ".png"
    # Renumbered 1..N: ffmpeg's image2 demuxer reads a gap-free sequence.
    for i, (_number, key) in enumerate(job.frames, start=1):
        store.get_file(key, frames_dir / f"{i:06d}{ext}")
    out = tmp / f"video{settings.extension}"
    command = encode_command(settings, frames_dir / f"%06d{ext}", rate, out, audio)
    result = subprocess.run(command, capture_output=True, text=True, timeout=FFMPEG_TIMEOUT_S, check=False)
    if result.returncode != 0 or not out.exists():
        raise RuntimeError(f"ffmpeg failed (exit {result.returncode}): {_tail(result.stderr)}")
    name = product_name(job.name, settings.extension)
    key = output_key(job.company_id, job.job_id, f"{PRODUCT_DIR}/{name}")
    size, sha = out.stat().st_size, _sha256(out)
    store.put_file(key, out)
    return facts(
        video=True,
        ok=True,
        name=name,
        key=key,
        size=size,
        sha256=sha,
        detail=_describe(settings, float(rate), audio is not None),
    )


def _video_task(config: StoreConfig, job: VideoJob) -> ProductFacts:
    """Body of the Ray task: its own store, since stores do not travel between processes."""
    logging.basicConfig(level=logging.INFO)
    failures = ErrorCounts()  # its failed store calls travel back with the facts (issue 15)
    try:
        facts = make_video(CountingStore(make_store(config), failures), job)
    except Exception as exc:  # reported on the job, never lost: the frames are there, the video is not
        log.exception("job %s: the video failed", job.job_id)
        facts = ProductFacts(job_id=job.job_id, video=True, reason=f"{type(exc).__name__}: {exc}")
    return replace(facts, storage_errors=failures.snapshot())


class VideoMaker:
    """Dispatcher hooks: ``maker(job_id)`` when a job completes (returns at once), ``maker.collect()`` each loop
    turn to record what the encode tasks reported."""

    def __init__(
        self,
        db: Database,
        store: StoreConfig,
        clock: Clock,
        store_errors: Callable[[dict[str, int]], None] | None = None,
    ) -> None:
        self.db = db
        self.store = store
        self.clock = clock
        self.store_errors = store_errors  # issue 15: where the encode tasks' failed store calls are counted
        self.pending: dict[Any, str] = {}  # ObjectRef -> job id
        self._remote: Any = None
        self._recovered = False

    def __call__(self, job_id: str) -> None:
        """Start the product of ``job_id`` unless the job asked for image files only."""
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job is None or JobSettings.of(job.settings).output_format is not OutputFormat.SCENE:
                return
            products.start(s, job, self.clock.now())
        self._launch(job_id)

    def _launch(self, job_id: str) -> None:
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                return
            rows = s.execute(select(Frame.frame, Frame.key).where(Frame.job_id == job_id).order_by(Frame.frame))
            work = VideoJob(
                job_id=job.id,
                company_id=job.company_id,
                name=job.name,
                blend_file=job.blend_file,
                manifest=dict(job.manifest),
                frames=[(int(n), str(k)) for n, k in rows],
            )
        import ray

        if self._remote is None:
            # No CPU asked: render slots hold every core; the CPU-seconds are metered to the company instead.
            self._remote = ray.remote(num_cpus=0, max_retries=1)(_video_task)
        # On this (the scheduler's) node: the task carries the store's keys (farm.media.on_this_node).
        self.pending[self._remote.options(**on_this_node()).remote(self.store, work)] = job_id

    def collect(self) -> None:
        """Record the facts of finished encodes; on the first call, restart encodes a previous scheduler left.
        Never raises: it runs in the dispatch loop, and what failed is tried again on the next turn."""
        try:
            self._collect()
        except Exception:
            log.exception("recording the video products failed; trying again on the next turn")

    def _collect(self) -> None:
        if not self._recovered:
            self._recovered = True
            with self.db.session() as s:
                left = [job_id for job_id in products.checking(s) if job_id not in self.pending.values()]
            for job_id in left:
                log.info("job %s: encoding its video again (the scheduler restarted)", job_id)
                self._launch(job_id)
        if not self.pending:
            return
        import ray

        done, _ = ray.wait(list(self.pending), num_returns=len(self.pending), timeout=0)
        for ref in done:
            job_id = self.pending[ref]
            try:
                facts: ProductFacts = ray.get(ref)
                if facts.storage_errors and self.store_errors is not None:
                    self.store_errors(facts.storage_errors)
            except Exception as exc:
                facts = ProductFacts(job_id=job_id, video=True, reason=reasons.make("video_lost", detail=str(exc)))
            with self.db.session() as s:
                products.record(s, facts, self.clock.now())
            del self.pending[ref]  # only once recorded: a database error leaves it for the next turn


VIDEO_MEDIA_TYPES = {
    ".mp4": "video/mp4",
    ".mov": "video/quicktime",
    ".mkv": "video/x-matroska",
    ".webm": "video/webm",
    ".ogv": "video/ogg",
    ".avi": "video/x-msvideo",
    ".flv": "video/x-flv",
    ".mpg": "video/mpeg",
    ".dv": "video/dv",
}


def video_media_type(name: str) -> str:
    """The HTTP media type of a product file."""
    return VIDEO_MEDIA_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")
