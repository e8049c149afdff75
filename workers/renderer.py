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

from farm.domain import reasons
from farm.domain.attempts import Fault, Outcome
from farm.domain.outputs import DEFAULT_TEMPLATE, FORMATS, OutputNameError, check_name, frame_name
from farm.lifecycle.outcomes import classify_blender_error, classify_exit
from workers.blender_proc import BlenderDied, BlenderProcess
from workers.display import display_path
from workers.protocol import EV_ERROR, EV_FRAME, EV_OPENED, EV_STATS, OP_OPEN, OP_RENDER, Event, parse_stats


@dataclass(frozen=True)
class ChunkSpec:
    """One chunk to render: the job folder is already laid out."""

    job_id: str
    blend_path: Path
    frames: list[int]
    out_dir: Path
    settings: dict[str, Any]
    attempt: str = ""  # "<task>:<number>": every command and event of this chunk carries it
    reload: bool = False  # the inputs were restored since the .blend was opened: open it again

    def output_path(self, frame: int) -> Path:
        """Where a renderer without a scene (the stand-in) writes the frame: the job's pattern or the default.
        Blender names frames itself, from the scene's output settings (see ``blender_child``)."""
        fmt = FORMATS.get(str(self.settings.get("output_format", "PNG")), FORMATS["PNG"])
        template = str(self.settings.get("output_pattern") or DEFAULT_TEMPLATE)
        return self.out_dir / frame_name(template, frame=frame, ext=fmt[2], job=self.job_id)


@dataclass(frozen=True)
class LayerFile:
    """One view layer's file of a frame written as one file per layer."""

    layer: str
    name: str
    path: Path
    display: Path | None = None  # its display-referred copy (``workers.display``), when Blender saved one


@dataclass(frozen=True)
class FrameDone:
    frame: int
    path: Path
    seconds: float
    device: str
    name: str = ""  # the file's name inside the job's outputs (a relative path); the path's name when empty
    layers: tuple[LayerFile, ...] = ()  # every file of the frame when it is one per view layer (the first is path)
    display: Path | None = None  # the display-referred copy of ``path`` (scene-linear formats), when saved

    @property
    def output_name(self) -> str:
        """The name the frame is stored under."""
        return self.name or self.path.name


@dataclass
class ChunkResult:
    """Facts of one chunk; the scheduler decides what they mean."""

    outcome: Outcome
    exit_code: int | None = None
    reason: str = ""
    log_tail: str = ""
    blender_seconds: float = 0.0
    frames: list[int] = field(default_factory=list)
    fault: Fault = Fault.NONE
    warning: str = ""


class ProtocolError(RuntimeError):
    """Blender sent an event that does not belong to the chunk being rendered."""


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
        self._opened: Event | None = None  # what Blender said when it opened the loaded .blend

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
        result = ChunkResult(outcome=Outcome.COMPLETED)
        self._fraction = 0.0
        started = time.monotonic()
        clean = False
        try:
            self._render(spec, on_frame, on_progress, stopped, result)
            clean = result.outcome is Outcome.COMPLETED
        except BlenderDied as exc:
            result.outcome = Outcome.CANCELED if stopped() else Outcome.FAILED
            result.exit_code = exc.exit_code
            result.fault = classify_exit(exc.exit_code)
            result.reason = result.reason or reasons.make("blender_stopped", detail=str(exc))
        except ProtocolError as exc:
            result.outcome, result.fault = Outcome.FAILED, Fault.NODE
            result.reason = reasons.make("blender_protocol", detail=str(exc))
        finally:
            if not clean:
                # Whatever stopped the chunk early (an error, a cancel, a storage failure raised by on_frame),
                # Blender may still hold queued commands: only a fresh process is known to hold none.
                self.proc.kill()
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
        if self.proc.loaded != loaded_key or spec.reload:
            self.proc.loaded = None
            self.proc.send(OP_OPEN, attempt=spec.attempt, path=str(spec.blend_path), settings=spec.settings)
            ev = self._wait(spec, stopped, {EV_OPENED, EV_ERROR})
            if ev is None:
                result.outcome = Outcome.CANCELED
                return
            if ev.kind == EV_ERROR:
                message = str(ev.data.get("message", ""))
                result.outcome, result.exit_code = Outcome.FAILED, 1
                result.fault = classify_blender_error(message, str(ev.data.get("fault", "")))
                result.reason = message or reasons.make("blender_setup", file=spec.blend_path.name)
                return
            self.proc.loaded = loaded_key
            self._opened = ev
        missing = [str(m) for m in self._opened.data.get("missing", [])] if self._opened is not None else []
        if missing:
            listed = ", ".join(missing[:30]) + (f" and {len(missing) - 30} more" if len(missing) > 30 else "")
            if not spec.settings.get("allow_missing"):
                result.outcome, result.fault = Outcome.FAILED, Fault.SCENE
                result.reason = reasons.make("inputs_missing", files=listed)
                return
            result.warning = f"rendered with missing inputs (--allow-missing): {listed}"
        spec.out_dir.mkdir(parents=True, exist_ok=True)
        for frame in spec.frames:
            self.proc.send(OP_RENDER, attempt=spec.attempt, frame=frame, out_dir=str(spec.out_dir), job=spec.job_id)
        pending = list(spec.frames)
        while pending:
            ev = self._wait(spec, stopped, {EV_FRAME, EV_ERROR}, on_progress)
            if ev is None:
                result.outcome = Outcome.CANCELED
                return
            if ev.kind == EV_ERROR:
                message = str(ev.data.get("message", ""))
                result.outcome, result.exit_code = Outcome.FAILED, 1
                result.fault = classify_blender_error(message, str(ev.data.get("fault", "")))
                result.reason = f"frame {ev.data.get('frame')}: {message}"
                return
            frame = int(ev.data["frame"])
            if frame != pending[0]:
                raise ProtocolError(f"expected frame {pending[0]}, Blender reported frame {frame}")
            path, name = self._file(spec, frame, str(ev.data.get("path", "")), str(ev.data.get("name", "")))
            display = self._display(spec, frame, name, str(ev.data.get("display") or ""))
            layers: list[LayerFile] = []
            for item in ev.data.get("files") or []:
                file_path, file_name = self._file(spec, frame, str(item.get("path", "")), str(item.get("name", "")))
                layer_display = self._display(spec, frame, file_name, str(item.get("display") or ""))
                layers.append(LayerFile(str(item.get("layer", "")), file_name, file_path, layer_display))
            pending.pop(0)
            seconds, device = float(ev.data["seconds"]), str(ev.data["device"])
            on_frame(FrameDone(frame, path, seconds, device, name, tuple(layers), display))
            result.frames.append(frame)

    @staticmethod
    def _file(spec: ChunkSpec, frame: int, path: str, name: str) -> tuple[Path, str]:
        """A file Blender says it wrote: named safely, inside this chunk's output folder."""
        try:
            check_name(name)
        except OutputNameError as exc:
            raise ProtocolError(f"frame {frame}: {exc}") from exc
        if Path(path) != spec.out_dir / name:
            raise ProtocolError(f"frame {frame} was written to {path}, not to this chunk's output folder")
        return Path(path), name

    @staticmethod
    def _display(spec: ChunkSpec, frame: int, name: str, path: str) -> Path | None:
        """The display copy Blender says it saved for the file ``name``: only at its place in this chunk's folder."""
        if not path:
            return None
        expected = display_path(spec.out_dir, name)
        if Path(path) != expected:
            raise ProtocolError(f"frame {frame}: a display copy at {path}, not at {expected}")
        return expected

    def _wait(
        self, spec: ChunkSpec, stopped: StopCheck, kinds: set[str], on_progress: ProgressCallback | None = None
    ) -> Event | None:
        while True:
            if stopped():
                return None  # render() kills Blender on the way out
            ev = self.proc.next_event(0.2)
            if ev is None:
                continue
            if str(ev.data.get("attempt", "")) != spec.attempt:
                raise ProtocolError(f"an event of attempt {ev.data.get('attempt')!r} arrived during {spec.attempt!r}")
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
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
