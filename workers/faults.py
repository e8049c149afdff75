"""A scripted stand-in renderer for scheduler and reliability tests: sleeps per frame, and crashes or hangs on
chosen frames, optionally only on chosen hosts. Same worker code path as Blender, behind the Renderer seam.

The script is the renderer setting (``FARM_RENDERER``), directives separated by ``;``::

    sleep:0.05              seconds per frame (default 0.05)
    slow:71-90=0.4          seconds per frame for these frames
    fail:52                 frame 52 fails every time: exit status 134 and a Blender-like log tail
    fail:31-40@gpu-node     frames 31..40 fail, but only on the host named gpu-node
    scene:7                 frame 7 fails with a scene error (a Python error in Blender: not the node's fault)
    hang:61-63              these frames never finish: only a kill (cancel, lease expiry) ends them

Frame lists use the job frame syntax (``1-10,15``). A failing frame fails before its file is written.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from farm.domain.attempts import Fault, Outcome
from farm.domain.frames import parse_frames
from workers.renderer import (
    ChunkResult,
    ChunkSpec,
    FrameCallback,
    FrameDone,
    ProgressCallback,
    StopCheck,
    tiny_png,
)

CRASH_EXIT = 134  # what a Blender abort (SIGABRT) reports
BEAT_S = 0.05


@dataclass
class FaultScript:
    seconds_per_frame: float = 0.05
    fail: list[tuple[frozenset[int], str]] = field(default_factory=list)  # (frames, host or "")
    hang: frozenset[int] = frozenset()
    slow: dict[int, float] = field(default_factory=dict)
    scene: frozenset[int] = frozenset()

    @classmethod
    def parse(cls, text: str) -> FaultScript:
        """Parse ``sleep:S;slow:FRAMES=S;fail:FRAMES[@HOST];hang:FRAMES``; a bad one raises ``ValueError``."""
        script = cls()
        for part in (p.strip() for p in text.split(";")):
            if not part:
                continue
            kind, _, arg = part.partition(":")
            if kind == "sleep":
                script.seconds_per_frame = float(arg)
            elif kind == "fail":
                frames, _, host = arg.partition("@")
                script.fail.append((frozenset(parse_frames(frames)), host))
            elif kind == "slow":
                frames, _, seconds = arg.partition("=")
                script.slow.update(dict.fromkeys(parse_frames(frames), float(seconds)))
            elif kind == "hang":
                script.hang = script.hang | frozenset(parse_frames(arg))
            elif kind == "scene":
                script.scene = script.scene | frozenset(parse_frames(arg))
            else:
                raise ValueError(
                    f"unknown renderer directive {part!r}; use sleep:S, slow:FRAMES=S, fail:FRAMES[@HOST], "
                    "scene:FRAMES, hang:FRAMES"
                )
        return script

    def seconds(self, frame: int) -> float:
        return self.slow.get(frame, self.seconds_per_frame)

    def fails(self, frame: int, host: str) -> bool:
        return any(frame in frames and (not only or only == host) for frames, only in self.fail)


def _write(path: Path, data: bytes) -> None:
    """Write a (tiny) frame file: plain ``os`` calls, since farm benchmarks render thousands of these."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def is_script(name: str) -> bool:
    """Whether a renderer setting names a fault script rather than a plain renderer."""
    return ";" in name or name.startswith(("fail:", "hang:", "scene:", "slow:"))


class FaultyRenderer:
    """Sleeps per frame and writes tiny PNGs; fails or hangs where the script says."""

    def __init__(self, script: FaultScript, host: str | None = None) -> None:
        self.script = script
        self.host = host or socket.gethostname()
        self._killed = False
        self._lines: list[str] = []

    def warm(self) -> None:
        self._killed = False
        self._lines = []

    def kill(self) -> None:
        self._killed = True

    def close(self) -> None:
        self._killed = True

    def live_log(self) -> str:
        return "\n".join(list(self._lines))

    def render(
        self, spec: ChunkSpec, on_frame: FrameCallback, on_progress: ProgressCallback, stopped: StopCheck
    ) -> ChunkResult:
        self._killed = False
        result = ChunkResult(outcome=Outcome.COMPLETED)
        started = time.monotonic()
        spec.out_dir.mkdir(parents=True, exist_ok=True)
        device = "GPU:sleep" if spec.settings.get("gpu") else "CPU"
        lines: list[str] = []
        self._lines = lines  # live_log() reads it while the chunk runs
        for frame in spec.frames:
            lines.append(f"Fra:{frame} Mem:12.00M | Syncing Cube")
            if self.script.fails(frame, self.host):
                lines += [f"Fra:{frame} Mem:12.00M | Rendering 1 / 1 samples", "Segmentation fault (core dumped)"]
                result.outcome, result.exit_code, result.fault = Outcome.FAILED, CRASH_EXIT, Fault.NODE
                result.reason = f"frame {frame}: Blender exited with status {CRASH_EXIT} (simulated crash)"
                break
            if frame in self.script.scene:
                lines.append("Error: Python: Traceback (most recent call last): (simulated scene error)")
                result.outcome, result.exit_code, result.fault = Outcome.FAILED, 1, Fault.SCENE
                result.reason = f"frame {frame}: simulated scene error"
                break
            hang = frame in self.script.hang
            seconds = self.script.seconds(frame)
            deadline = time.monotonic() + seconds
            while hang or time.monotonic() < deadline:
                if stopped() or self._killed:
                    result.outcome = Outcome.CANCELED
                    result.blender_seconds = time.monotonic() - started
                    result.log_tail = "\n".join(lines)
                    return result
                if not hang:
                    on_progress(0.5)  # the periodic beat a rendering Blender gives; a hung one gives none
                time.sleep(BEAT_S if hang else min(BEAT_S, max(0.001, deadline - time.monotonic())))
            path: Path = spec.output_path(frame)
            _write(path, tiny_png(4, 4, frame))
            on_frame(FrameDone(frame, path, seconds, device))
            result.frames.append(frame)
            lines.append(f"Saved: '{path.name}'")
        result.blender_seconds = time.monotonic() - started
        result.log_tail = "\n".join(lines)
        return result
