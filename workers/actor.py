"""The worker actor: one per render slot. It renders what it is given and reports facts, nothing more."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from farm.errors import StorageError
from storage.base import ObjectStore, output_key
from storage.factory import StoreConfig, make_store
from workers.cache import BlobCache, sha256_file
from workers.renderer import ChunkSpec, FrameDone, Renderer, make_renderer

log = logging.getLogger(__name__)

#: How much of a running chunk's log a poll carries (the attempt keeps the same tail when it ends).
LIVE_LOG_CHARS = 16_000


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs, decided by the process that creates it."""

    name: str
    store: StoreConfig
    cache_dir: str
    cache_bytes: int
    work_dir: str
    resources: dict[str, float] = field(default_factory=lambda: {"cpu": 1.0})
    renderer: str = "blender"
    upload_retries: int = 6
    node: str = ""  # the node's name as the scheduler knows it (cluster mode); the host name otherwise


@dataclass(frozen=True)
class Assignment:
    """One chunk for one attempt, as the scheduler hands it out."""

    job_id: str
    task_id: str
    attempt: int
    company_id: str
    blend_file: str
    manifest: dict[str, dict[str, Any]]
    frames: list[int]
    settings: dict[str, Any]


def store_with_retries(
    store: ObjectStore, key: str, path: Path, retries: int, stopped: threading.Event
) -> None:
    """Upload with backoff across a storage outage; gives up only after ``retries`` tries."""
    delay = 0.2
    for attempt in range(retries + 1):
        try:
            store.put_file(key, path)
            return
        except StorageError:
            if attempt == retries or stopped.is_set():
                raise
            log.warning("upload of %s failed; retrying in %.1fs", key, delay)
            stopped.wait(delay)
            delay = min(delay * 2, 5.0)


class RenderWorker:
    """Plain class; ``scheduler.pool`` wraps it with ``ray.remote`` and the slot's resources."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.node = config.node or socket.gethostname()
        self.store = make_store(config.store)
        self.cache = BlobCache(Path(config.cache_dir), config.cache_bytes)
        self.work = Path(config.work_dir) / config.name
        self.work.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        self.renderer: Renderer = make_renderer(config.renderer, self.work, env=env)
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self._task: str | None = None
        self._progress = 0.0
        self._stop = threading.Event()
        self._last_log = ""
        self._rendering = False
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

    def poll(self) -> dict[str, Any]:
        """Frames stored since the last poll, the current task and its progress; doubles as a heartbeat."""
        with self._lock:
            events, self._events = self._events, []
            report: dict[str, Any] = {
                "task": self._task,
                "events": events,
                "progress": self._progress,
                "beat": time.time(),
                "lease_age": time.monotonic() - self._renewed,
            }
            running = self._task is not None and self._rendering
        if running:
            # The log so far, sent only when it grew: the monitor shows it live, mid-chunk.
            text = self.renderer.live_log()
            if text and text != self._last_log:
                self._last_log = report["log"] = text[-LIVE_LOG_CHARS:]
        return report

    def cancel(self, task_id: str) -> bool:
        """Stop the chunk now: nothing more is stored for it."""
        with self._lock:
            if self._task != task_id:
                return False
            self._stop.set()
        self.renderer.kill()
        return True

    def render(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Render one chunk and return the attempt's facts."""
        a = Assignment(**raw)
        with self._lock:
            self._task, self._progress, self._events = a.task_id, 0.0, []
            self._renewed = time.monotonic()
            self._last_log = ""
            self._stop.clear()
        started_wall, started = time.time(), time.monotonic()
        facts: dict[str, Any] = {
            "task_id": a.task_id,
            "attempt": a.attempt,
            "node": self.node,
            "worker": self.config.name,
            "resources": self.config.resources,
            "frames": [],
        }
        stored: list[dict[str, Any]] = []
        try:
            job_dir = self.work / "jobs" / a.job_id
            self.cache.materialize(self.store, a.company_id, a.manifest, job_dir / "input")
            self._renew()
            # A GPU job on a CPU slot (allowed fallback) must not grab a GPU the node's GPU slots own.
            gpu = bool(a.settings.get("gpu")) and self.config.resources.get("gpu", 0.0) > 0
            spec = ChunkSpec(
                job_id=a.job_id,
                blend_path=job_dir / "input" / a.blend_file,
                frames=a.frames,
                out_dir=job_dir / "output" / a.task_id,
                settings={**a.settings, "threads": int(self.config.resources.get("cpu", 0)), "gpu": gpu},
            )
            self._rendering = True  # from here on the renderer's live log is this chunk's
            try:
                result = self.renderer.render(
                    spec, lambda done: self._store_frame(a, done, stored), self._set_progress, self._stop.is_set
                )
            finally:
                self._rendering = False
            if self._stop.is_set():
                result.outcome = "canceled"
            facts.update(
                outcome=result.outcome,
                exit_code=result.exit_code,
                reason=result.reason,
                log_tail=result.log_tail,
                blender_seconds=result.blender_seconds,
            )
            shutil.rmtree(spec.out_dir, ignore_errors=True)
        except StorageError as exc:
            facts.update(outcome="failed", exit_code=None, reason=f"storage: {exc}", log_tail="")
        except Exception as exc:
            log.exception("chunk %s failed in the worker", a.task_id)
            facts.update(outcome="failed", exit_code=None, reason=f"worker error: {exc!r}", log_tail="")
        with self._lock:
            facts["frames"] = stored
            self._task = None
        facts["started_at"] = started_wall
        facts["seconds"] = time.monotonic() - started
        facts["ended_at"] = started_wall + facts["seconds"]
        return facts

    def _renew(self) -> None:
        with self._lock:
            self._renewed = time.monotonic()

    def _set_progress(self, fraction: float) -> None:
        with self._lock:
            self._progress = fraction
            self._renewed = time.monotonic()

    def _store_frame(self, a: Assignment, done: FrameDone, stored: list[dict[str, Any]]) -> None:
        if self._stop.is_set():
            return  # canceled: nothing is stored after the cancel
        name = done.path.name
        key = output_key(a.company_id, a.job_id, name)
        sha = sha256_file(done.path)
        size = done.path.stat().st_size
        store_with_retries(self.store, key, done.path, self.config.upload_retries, self._stop)
        event = {
            "task_id": a.task_id,
            "attempt": a.attempt,
            "frame": done.frame,
            "key": key,
            "name": name,
            "size": size,
            "sha256": sha,
            "device": done.device,
            "seconds": done.seconds,
        }
        with self._lock:
            self._events.append(event)
            stored.append(event)
            self._renewed = time.monotonic()
