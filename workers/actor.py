"""The worker actor: one per render slot. It renders what it is given and reports facts, nothing more."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from farm.domain import reasons
from farm.domain.attempts import Assignment, AttemptFacts, Fault, Outcome, PollReport, StoredFrame, StoredLayer
from farm.errors import ObjectMissing, StorageError
from farm.media.thumbnails import store_display_images
from storage.base import ObjectStore, output_key
from storage.counting import CountingStore, ErrorCounts
from storage.factory import StoreConfig, make_store
from storage.grants import GrantedStore, grant_pool
from workers.cache import BlobCache, empty_folder, hash_file, remove_tree
from workers.child_env import child_environment
from workers.factory import make_renderer
from workers.layout import JobFolder, hide_node_paths
from workers.renderer import ChunkSpec, FrameDone, Renderer

log = logging.getLogger(__name__)

#: How much of a running chunk's log a poll carries (the attempt keeps the same tail when it ends).
LIVE_LOG_CHARS = 16_000


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs, decided by the process that creates it."""

    name: str
    store: StoreConfig | None  # the local store of the embedded mode; None: only each assignment's grant
    cache_dir: str
    cache_bytes: int
    work_dir: str
    resources: dict[str, float] = field(default_factory=lambda: {"cpu": 1.0})
    renderer: str = "blender"
    upload_retries: int = 6
    node: str = ""  # the node's name as the scheduler knows it (cluster mode); the host name otherwise


def store_with_retries(
    store: ObjectStore, key: str, path: Path, retries: int, stopped: threading.Event, *, move: bool = False
) -> bool:
    """Upload with backoff across a storage outage; gives up only after ``retries`` tries. ``move``: the file is
    not needed afterwards, so a store that can take it by renaming it into place (the local store) does, and
    the answer is True (the file is gone)."""
    delay = 0.2
    attempt = 0
    while True:
        try:
            if move and isinstance(store, CountingStore):
                return store.move_file(key, path)
            store.put_file(key, path)
            return False
        except StorageError:
            if attempt >= retries or stopped.is_set():
                raise
            attempt += 1
            log.warning("upload of %s failed; retrying in %.1fs", key, delay)
            stopped.wait(delay)
            delay = min(delay * 2, 5.0)


class RenderWorker:
    """Plain class; ``scheduler.pool`` wraps it with ``ray.remote`` and the slot's resources."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.node = config.node or socket.gethostname()
        # No store credentials here (issue 15): a local store (embedded mode), else per-assignment grants.
        # Every store call is counted (issue 15): failures reach /metrics through the scheduler (polls, facts).
        self.storage_errors = ErrorCounts()
        self.store: ObjectStore | None = (
            CountingStore(make_store(config.store), self.storage_errors) if config.store is not None else None
        )
        self._chunk_store: ObjectStore | None = None  # the store of the chunk being rendered
        self._grant_http = grant_pool()
        # The limit counts the input folders of every slot on the node (they share the work dir).
        self.cache = BlobCache(Path(config.cache_dir), config.cache_bytes, jobs_root=Path(config.work_dir))
        self.work = Path(config.work_dir) / config.name
        # Job folders of an earlier life of this slot belong to chunks that are over: start clean.
        remove_tree(self.work / "jobs")
        self.work.mkdir(parents=True, exist_ok=True)
        self._folders: dict[str, JobFolder] = {}
        self._reload: set[str] = set()  # jobs whose inputs were restored since Blender opened them
        # Blender gets a minimal environment of its own, never the worker's (store keys, FARM_* settings).
        env = child_environment(os.environ, self.work / "home", has_gpu=config.resources.get("gpu", 0.0) > 0)
        self.renderer: Renderer = make_renderer(config.renderer, self.work, env=env)
        self._lock = threading.Lock()
        self._events: list[StoredFrame] = []
        self._task: str | None = None
        self._attempt = 0
        self._progress = 0.0
        self._stop = threading.Event()
        self._last_log = ""
        self._rendering = False
        self._current_job: str | None = None
        self._bundle: set[str] = set()  # chunks of the bundle being rendered that have not begun
        self._skip: set[str] = set()  # of those, the ones canceled meanwhile
        # The lease: renewed at each sign of progress (a frame stored, Blender's sample reports). The scheduler
        # learns its age from ``poll`` and kills an attempt whose lease is older than the task timeout.
        self._renewed = time.monotonic()

    def info(self) -> dict[str, Any]:
        """Who and where this worker is."""
        try:
            import ray

            node_id = ray.get_runtime_context().get_node_id()
        except Exception:
            node_id = ""
        return {
            "name": self.config.name,
            "node": self.node,
            "node_id": node_id,
            "pid": os.getpid(),
            "resources": self.config.resources,
            "gpu_ids": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        }

    def warm(self) -> dict[str, Any]:
        """Start Blender now so the first chunk does not wait for it."""
        self.renderer.warm()
        return self.info()

    def close(self) -> None:
        """Stop Blender before the actor goes away."""
        self._stop.set()
        self.renderer.kill()
        self.renderer.close()

    def poll(self) -> PollReport:
        """Frames stored since the last poll, the current task and its progress; doubles as a heartbeat."""
        with self._lock:
            events, self._events = self._events, []
            task, attempt, progress = self._task, self._attempt, self._progress
            lease_age = time.monotonic() - self._renewed
            running = self._task is not None and self._rendering
        log_text = None
        if running:
            # The log so far, sent only when it grew: the monitor shows it live, mid-chunk.
            text = self.renderer.live_log()
            if text and text != self._last_log:
                self._last_log = log_text = text[-LIVE_LOG_CHARS:]
        return PollReport(
            task, attempt, tuple(events), progress, time.time(), lease_age, log_text, self.storage_errors.snapshot()
        )

    def drop_jobs(self, job_ids: list[str]) -> list[str]:
        """Remove the folders of these jobs (they ended) unless a chunk of one is rendering; returns those removed."""
        with self._lock:
            current = self._current_job if self._task is not None else None
        removed = []
        for job_id in job_ids:
            folder = self.work / "jobs" / job_id
            if job_id == current or not folder.exists():
                continue
            self._folders.pop(job_id, JobFolder(folder)).remove()
            self._reload.discard(job_id)
            removed.append(job_id)
        if removed:
            log.info("worker %s: removed the folders of ended jobs %s", self.config.name, ", ".join(removed))
        return removed

    def cancel(self, task_id: str) -> bool:
        """Stop the chunk now: nothing more is stored for it. A chunk of the bundle being rendered that has not
        begun yet is skipped when its turn comes."""
        with self._lock:
            if self._task != task_id:
                if task_id not in self._bundle:
                    return False
                self._skip.add(task_id)
                return True
            self._stop.set()
        self.renderer.kill()
        return True

    def render_bundle(self, bundle: list[Assignment]) -> list[AttemptFacts]:
        """Several short chunks of one job in one call (``scheduler.bundles``): one Ray round trip instead of one
        per chunk. Each chunk is rendered and reported exactly as if it came alone (its own attempt, frames and
        facts); one canceled before its turn ends canceled with nothing rendered. After a chunk that failed, the
        rest are not begun (reason ``bundle_stopped``: requeued, counting against nothing), so a bad node fails one
        chunk per call, not the whole bundle, before the blocklist takes it out."""
        with self._lock:
            self._bundle, self._skip = {a.task_id for a in bundle}, set()
        out: list[AttemptFacts] = []
        failed = False
        try:
            for a in bundle:
                with self._lock:
                    self._bundle.discard(a.task_id)
                    skipped = a.task_id in self._skip
                if failed:
                    out.append(self._not_begun(a, "bundle_stopped"))
                    continue
                out.append(self._not_begun(a, "stopped") if skipped else self.render(a))
                failed = out[-1].outcome is Outcome.FAILED
        finally:
            with self._lock:
                self._bundle, self._skip = set(), set()
        return out

    def _not_begun(self, a: Assignment, why: str) -> AttemptFacts:
        now = time.time()
        return AttemptFacts(
            task_id=a.task_id,
            attempt=a.attempt,
            node=self.node,
            worker=self.config.name,
            resources=dict(self.config.resources),
            outcome=Outcome.CANCELED,
            started_at=now,
            ended_at=now,
            seconds=0.0,
            reason=reasons.make(why),
            storage_errors=self.storage_errors.snapshot(),
        )

    def render(self, a: Assignment) -> AttemptFacts:
        """Render one chunk and return the attempt's facts."""
        with self._lock:
            self._task, self._attempt, self._progress, self._events = a.task_id, a.attempt, 0.0, []
            self._current_job = a.job_id
            self._renewed = time.monotonic()
            self._last_log = ""
            self._stop.clear()
        started_wall, started = time.time(), time.monotonic()
        stored: list[StoredFrame] = []
        written: list[Path] = []  # files of stored frames still in the output folder (copied there, not moved)
        ended: dict[str, Any] = {}
        audit_note = ""
        folder = self._folders.get(a.job_id)
        if folder is None:
            folder = self._folders[a.job_id] = JobFolder(self.work / "jobs" / a.job_id)
        try:
            store = self._chunk_store = self._store_for(a)
            folder.prepare(self.cache, store, a.company_id, a.manifest)
            self._renew()
            # A GPU job on a CPU slot (allowed fallback) must not grab a GPU the node's GPU slots own.
            gpu = bool(a.settings.get("gpu")) and self.config.resources.get("gpu", 0.0) > 0
            spec = ChunkSpec(
                job_id=a.job_id,
                blend_path=folder.input / a.blend_file,
                frames=a.frames,
                out_dir=folder.chunk_output,  # the job's chunks on this slot reuse it (``empty_folder``)
                settings={**a.settings, "threads": int(self.config.resources.get("cpu", 0)), "gpu": gpu},
                attempt=f"{a.task_id}:{a.attempt}",
                reload=a.job_id in self._reload,
            )
            self._reload.discard(a.job_id)
            # Nothing of an earlier attempt can pass for this one's frame: the folder is emptied first.
            empty_folder(spec.out_dir)
            self._rendering = True  # from here on the renderer's live log is this chunk's
            try:
                result = self.renderer.render(
                    spec,
                    lambda done: self._store_frame(a, done, stored, written),
                    self._set_progress,
                    self._stop.is_set,
                )
            finally:
                self._rendering = False
                audit = folder.audit()
                if not audit.clean:
                    self._reload.add(a.job_id)
                    audit_note = audit.describe()
            ended.update(
                outcome=Outcome.CANCELED if self._stop.is_set() else result.outcome,
                fault=result.fault,
                warning=result.warning,
                exit_code=result.exit_code,
                reason=result.reason,
                log_tail=result.log_tail,
                blender_seconds=result.blender_seconds,
            )
            for path in written:  # what was copied into the store, not moved (the next chunk empties the rest)
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        except ObjectMissing as exc:
            # The store is up but an input is gone: waiting will not help, another node will not either.
            ended.update(
                outcome=Outcome.FAILED,
                fault=Fault.SCENE,
                reason=reasons.make("input_missing", detail=str(exc)),  # issue 16: coded, shown in any language
            )
        except StorageError as exc:
            ended.update(outcome=Outcome.FAILED, fault=Fault.STORAGE, reason=reasons.make("storage", detail=str(exc)))
        except Exception as exc:
            log.exception("chunk %s failed in the worker", a.task_id)
            ended.update(
                outcome=Outcome.FAILED, fault=Fault.NODE, reason=reasons.make("worker_error", detail=repr(exc))
            )
        if audit_note:
            ended["log_tail"] = f"{ended.get('log_tail', '')}\n{audit_note}\n"
        reason = ended.get("reason")
        if isinstance(reason, str) and reason:  # shown to the studio: no paths of this node
            ended["reason"] = self._hide_paths(a.job_id, reason)
        with self._lock:
            frames = tuple(stored)
            self._task = None
        seconds = time.monotonic() - started
        return AttemptFacts(
            task_id=a.task_id,
            attempt=a.attempt,
            node=self.node,
            worker=self.config.name,
            resources=dict(self.config.resources),
            started_at=started_wall,
            ended_at=started_wall + seconds,
            seconds=seconds,
            frames=frames,
            storage_errors=self.storage_errors.snapshot(),
            **ended,
        )

    def _store_for(self, a: Assignment) -> ObjectStore:
        """How this chunk reaches the store: its grant when it has one, else the worker's local store."""
        if a.grant is not None:
            return CountingStore(GrantedStore(a.grant, http=self._grant_http), self.storage_errors)
        if self.store is None:
            raise StorageError("the assignment carries no store grant and this worker holds no store")
        return self.store

    def _renew(self) -> None:
        with self._lock:
            self._renewed = time.monotonic()

    def _set_progress(self, fraction: float) -> None:
        with self._lock:
            self._progress = fraction
            self._renewed = time.monotonic()

    def _hide_paths(self, job_id: str, reason: str) -> str:
        """A reason as the studio may read it: this node's folders named by what they are."""
        places = [
            (self.work / "jobs" / job_id, "<job folder>"),
            (self.work, "<worker>"),
            (Path(self.config.cache_dir), "<cache>"),
        ]
        # A coded reason keeps its code: its parameters are rewritten.
        return reasons.rewrite(reason, lambda text: hide_node_paths(text, places))

    def _store_frame(
        self, a: Assignment, done: FrameDone, stored: list[StoredFrame], written: list[Path] | None = None
    ) -> None:
        """Store one frame's files (``written`` collects their local paths) and report it."""
        if self._stop.is_set():
            return  # canceled: nothing is stored after the cancel
        name = done.output_name  # a relative path: the job's output layout (e.g. render/shot_0001.exr)
        key = output_key(a.company_id, a.job_id, name)
        sha, size = hash_file(done.path)
        store = self._chunk_store or self._store_for(a)
        retries = self.config.upload_retries
        left: list[Path] = []  # the files still in the output folder once stored (copied, not moved)
        layers: list[StoredLayer] = []
        for layer in done.layers:  # one file per view layer: the frame counts once every one is stored
            layer_key = output_key(a.company_id, a.job_id, layer.name)
            own = layer.path != done.path
            layer_sha, layer_size = hash_file(layer.path) if own else (sha, size)
            if layer_key != key and not store_with_retries(store, layer_key, layer.path, retries, self._stop, move=own):
                left.append(layer.path)
            layers.append(StoredLayer(layer.layer, layer_key, layer.name, layer_size, layer_sha))
        # Each file is hashed, then handed over (moved into a local store): the frame's own file goes last, as a
        # layer may be stored from it under another name. The output folder is removed after the chunk.
        if not store_with_retries(store, key, done.path, retries, self._stop, move=True):
            left.append(done.path)
        if done.display is not None:  # scene-linear frame: its thumbnail as the scene's view transform shows it
            store_display_images(store, key, sha, done.display)
        if written is not None:
            written.extend(left)
            if done.display is not None:
                written.append(done.display)
        event = StoredFrame(
            a.task_id, a.attempt, done.frame, key, name, size, sha, done.device, done.seconds, tuple(layers)
        )
        with self._lock:
            self._events.append(event)
            stored.append(event)
            self._renewed = time.monotonic()
