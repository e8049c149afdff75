"""The pipe protocol between a worker and its Blender subprocess: one JSON object per line, both ways.

Blender prints to stdout on its own, so messages travel on two dedicated pipes (commands in, events out)
and stdout/stderr go to the log file. Parsing is pure so it is tested on captured lines.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

# Commands (worker -> Blender)
OP_OPEN = "open"
OP_RENDER = "render"
OP_QUIT = "quit"
# Events (Blender -> worker)
EV_READY = "ready"
EV_OPENED = "opened"
EV_STATS = "stats"
EV_FRAME = "frame"
EV_ERROR = "error"


@dataclass(frozen=True)
class Event:
    """One message from the Blender subprocess."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)


def encode(kind_key: str, kind: str, **data: Any) -> bytes:
    """One line of the protocol."""
    return (json.dumps({kind_key: kind, **data}, separators=(",", ":")) + "\n").encode()


def command(op: str, **data: Any) -> bytes:
    """A command line for the Blender subprocess."""
    return encode("op", op, **data)


def event(kind: str, **data: Any) -> bytes:
    """An event line from the Blender subprocess."""
    return encode("ev", kind, **data)


def parse_event(line: bytes | str) -> Event:
    """Decode one event line; a garbled line becomes an ``error`` event rather than an exception."""
    text = line.decode(errors="replace") if isinstance(line, bytes) else line
    try:
        raw = json.loads(text)
    except json.JSONDecodeError:
        return Event(EV_ERROR, {"message": f"garbled message from Blender: {text[:200]!r}"})
    if not isinstance(raw, dict) or not isinstance(raw.get("ev"), str):
        return Event(EV_ERROR, {"message": f"message from Blender without an event kind: {text[:200]!r}"})
    kind = raw.pop("ev")
    return Event(kind, raw)


_SAMPLE = re.compile(r"Sample (\d+)/(\d+)")
_REMAINING = re.compile(r"Remaining:\s*(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)")
_MEM = re.compile(r"Mem:\s*([\d.]+)([KMG])")


@dataclass(frozen=True)
class RenderStats:
    """What Blender's ``render_stats`` handler string says about a frame in progress."""

    sample: int | None = None
    samples: int | None = None
    remaining_s: float | None = None
    mem_mb: float | None = None

    @property
    def fraction(self) -> float | None:
        """Share of samples done, when known."""
        if self.sample is None or not self.samples:
            return None
        return min(1.0, self.sample / self.samples)


def parse_stats(text: str) -> RenderStats:
    """Parse a stats string like ``Remaining: 00:00.47 | Mem: 3M | Sample 1/16``."""
    sample = samples = None
    remaining = mem = None
    if m := _SAMPLE.search(text):
        sample, samples = int(m.group(1)), int(m.group(2))
    if m := _REMAINING.search(text):
        hours = int(m.group(1)) if m.group(1) else 0
        remaining = hours * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    if m := _MEM.search(text):
        mem = float(m.group(1)) * {"K": 1 / 1024, "M": 1.0, "G": 1024.0}[m.group(2)]
    return RenderStats(sample, samples, remaining, mem)
