"""The Renderer seam: Blender for real, a sleep-based stand-in for scheduler tests. Same worker code path."""

from __future__ import annotations

import hashlib
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from workers.blender_proc import BlenderDied, BlenderProcess
from workers.protocol import EV_ERROR, EV_FRAME, EV_OPENED, EV_STATS, OP_OPEN, OP_RENDER, parse_stats

EXTENSIONS = {"PNG": ".png", "EXR": ".exr"}


@dataclass(frozen=True)
class ChunkSpec:
    """One chunk to render: the job folder is already laid out."""

    job_id: str
    blend_path: Path
    frames: list[int]
    out_dir: Path
    settings: dict[str, Any]

    def output_path(self, frame: int) -> Path:
        ext = EXTENSIONS[str(self.settings.get("output_format", "PNG"))]
        return self.out_dir / f"frame_{frame:06d}{ext}"


@dataclass(frozen=True)
class FrameDone:
    frame: int
    path: Path
    seconds: float
    device: str


@dataclass
class ChunkResult:
    """Facts of one chunk; the scheduler decides what they mean."""

    outcome: str  # completed | failed | canceled
    exit_code: int | None = None
    reason: str = ""
    log_tail: str = ""
    blender_seconds: float = 0.0
    frames: list[int] = field(default_factory=list)


FrameCallback = Callable[[FrameDone], None]
ProgressCallback = Callable[[float], None]
StopCheck = Callable[[], bool]


class Renderer(Protocol):
    def warm(self) -> None:
        """Get ready to render (start Blender) so the first chunk does not pay for it."""

    def render(
        self, spec: ChunkSpec, on_frame: FrameCallback, on_progress: ProgressCallback, stopped: StopCheck
    ) -> ChunkResult:
        """Render every frame of the chunk, calling ``on_frame`` as each file is written."""

    def kill(self) -> None:
        """Stop at once (cancel); safe from another thread."""

    def close(self) -> None:
        """Release everything."""

    def live_log(self) -> str:
        """What the chunk being rendered has logged so far (its tail); safe from another thread."""


class BlenderRenderer:
    """Renders through a persistent bpy subprocess that keeps the .blend loaded across chunks of a job."""

    def __init__(self, work_dir: Path, env: dict[str, str] | None = None, python: str | None = None) -> None:
        self.proc = BlenderProcess(Path(work_dir) / "blender.log", python=python, env=env)
        self._fraction = 0.0
        self._log_offset: int | None = None  # where the current chunk's output starts in the log file

    def warm(self) -> None:
        if not self.proc.alive:
            self.proc.start()

    def kill(self) -> None:
        # Another thread may be reading events: only signal here; the reader sees EOF and cleans up.
        self.proc.signal_kill()

    def close(self) -> None:
        self.proc.stop()

    def live_log(self) -> str:
        offset = self._log_offset
        return "" if offset is None else self.proc.log_since(offset)

    def render(
        self, spec: ChunkSpec, on_frame: FrameCallback, on_progress: ProgressCallback, stopped: StopCheck
    ) -> ChunkResult:
        log_offset = self.proc.log_size()
        self._log_offset = log_offset
        result = ChunkResult(outcome="completed")
        self._fraction = 0.0
        started = time.monotonic()
        try:
            self._render(spec, on_frame, on_progress, stopped, result)
        except BlenderDied as exc:
            result.outcome = "canceled" if stopped() else "failed"
            result.exit_code = exc.exit_code
            result.reason = result.reason or f"Blender stopped: {exc}"
            self.proc.kill()
        if result.outcome == "failed":
            self.proc.kill()  # a half-rendered chunk leaves Blender in an unknown state: start clean next time
        result.blender_seconds = time.monotonic() - started
        result.log_tail = self.proc.log_since(log_offset)
        self._log_offset = None  # the next chunk's live log starts empty
        return result

    def _render(
        self,
        spec: ChunkSpec,
        on_frame: FrameCallback,
        on_progress: ProgressCallback,
        stopped: StopCheck,
        result: ChunkResult,
    ) -> None:
        if not self.proc.alive:
            self.proc.start()
        loaded_key = f"{spec.blend_path}|{sorted(spec.settings.items())}"
        if self.proc.loaded != loaded_key:
            self.proc.loaded = None
            self.proc.send(OP_OPEN, path=str(spec.blend_path), settings=spec.settings)
            ev = self._wait(stopped, {EV_OPENED, EV_ERROR})
            if ev is None:
                result.outcome = "canceled"
                return
            if ev.kind == EV_ERROR:
                result.outcome, result.exit_code = "failed", 1
                result.reason = f"Blender could not open {spec.blend_path.name}: {ev.data.get('message', '')}"
                return
            self.proc.loaded = loaded_key
        spec.out_dir.mkdir(parents=True, exist_ok=True)
        for frame in spec.frames:
            self.proc.send(OP_RENDER, frame=frame, output=str(spec.output_path(frame)))
        for _ in spec.frames:
            ev = self._wait(stopped, {EV_FRAME, EV_ERROR}, on_progress)
            if ev is None:
                result.outcome = "canceled"
                return
            if ev.kind == EV_ERROR:
                result.outcome, result.exit_code = "failed", 1
                result.reason = f"frame {ev.data.get('frame')}: {ev.data.get('message', '')}"
                return
            frame = int(ev.data["frame"])
            on_frame(
                FrameDone(frame, Path(ev.data["path"]), float(ev.data["seconds"]), str(ev.data["device"]))
            )
            result.frames.append(frame)

    def _wait(self, stopped: StopCheck, kinds: set[str], on_progress: ProgressCallback | None = None) -> Any:
        while True:
            if stopped():
                self.proc.kill()
                return None
            ev = self.proc.next_event(0.2)
            if ev is None:
                continue
            if ev.kind == EV_STATS and on_progress is not None:
                # Every stats report is a sign of life (it renews the worker's lease), even before samples start.
                fraction = parse_stats(str(ev.data.get("text", ""))).fraction
                self._fraction = fraction if fraction is not None else self._fraction
                on_progress(self._fraction)
            if ev.kind in kinds:
                return ev


def tiny_png(width: int, height: int, seed: int) -> bytes:
    """A valid RGB PNG whose colour depends on ``seed`` (the stand-in renderer's 'frame')."""
    shade = hashlib.sha256(str(seed).encode()).digest()[:3]
    row = b"\x00" + shade * width
    raw = row * height

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def make_renderer(name: str, work_dir: Path, env: dict[str, str] | None = None) -> Renderer:
    """``blender`` (default); ``sleep:<seconds per frame>`` (tiny PNGs, for scheduler tests); or a fault script
    such as ``sleep:0.05;fail:31-40;hang:61`` (``workers.faults``)."""
    if name == "blender":
        return BlenderRenderer(work_dir, env=env)
    from workers import faults  # imports this module

    if faults.is_script(name) or name.startswith("sleep:"):
        return faults.FaultyRenderer(faults.FaultScript.parse(name))
    raise ValueError(f"unknown renderer {name!r}; use 'blender', 'sleep:SECONDS' or a fault script")
