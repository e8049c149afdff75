"""Parent side of the persistent Blender subprocess: start, talk over pipes, read the log, kill the group."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

from workers.protocol import EV_ERROR, EV_READY, Event, command, parse_event

LOG_TAIL_BYTES = 16 * 1024


class BlenderDied(RuntimeError):
    """The subprocess ended while the worker was waiting on it."""

    def __init__(self, message: str, exit_code: int | None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class BlenderProcess:
    """One long-lived ``python -m workers.blender_child`` in its own process group."""

    def __init__(self, log_path: Path, python: str | None = None, env: dict[str, str] | None = None) -> None:
        self.log_path = Path(log_path)
        self.python = python or sys.executable
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.loaded: str | None = None  # what .blend is open, so a next chunk of the same job skips loading
        self._cmd_w: int | None = None
        self._evt_r: int | None = None
        self._buffer = b""
        self._sel: selectors.BaseSelector | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 60.0) -> Event:
        """Start Blender and wait for its ``ready`` event."""
        self.stop()
        cmd_r, cmd_w = os.pipe()
        evt_r, evt_w = os.pipe()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                [self.python, "-m", "workers.blender_child", str(cmd_r), str(evt_w)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(cmd_r, evt_w),
                start_new_session=True,  # its own process group: cancel kills Blender and anything it spawned
                env=self.env,
                cwd=str(Path(__file__).resolve().parent.parent),
            )
        finally:
            log.close()
            os.close(cmd_r)
            os.close(evt_w)
        self._cmd_w, self._evt_r, self._buffer = cmd_w, evt_r, b""
        self._sel = selectors.DefaultSelector()
        self._sel.register(evt_r, selectors.EVENT_READ)
        self.loaded = None
        ready = self.next_event(timeout)
        if ready is None or ready.kind != EV_READY:
            raise BlenderDied(f"Blender did not start: {ready}", self.exit_code())
        return ready

    def send(self, op: str, **data: object) -> None:
        """Write a command; a dead child raises ``BlenderDied``."""
        if self._cmd_w is None:
            raise BlenderDied("Blender is not running", self.exit_code())
        try:
            os.write(self._cmd_w, command(op, **data))
        except (BrokenPipeError, OSError) as exc:
            raise BlenderDied(f"Blender went away: {exc}", self.exit_code()) from exc

    def next_event(self, timeout: float) -> Event | None:
        """The next event, None on timeout; ``BlenderDied`` at end of stream."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            if self._sel is None or self._evt_r is None:
                raise BlenderDied("Blender is not running", self.exit_code())
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if not self._sel.select(min(remaining, 0.5)):
                continue
            block = os.read(self._evt_r, 65536)
            if not block:
                code = self.wait_exit(2.0)
                self._close_pipes()
                raise BlenderDied(f"Blender exited with status {code}", code)
            self._buffer += block
        line, self._buffer = self._buffer.split(b"\n", 1)
        return parse_event(line)

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def wait_exit(self, timeout: float) -> int | None:
        if self.proc is None:
            return None
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self.proc.wait(timeout)
        return None

    def signal_kill(self) -> None:
        """SIGKILL the whole process group (bpy ignores SIGINT mid-render). Safe from any thread."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def kill(self) -> None:
        """Kill the group and close the pipes; only from the thread that reads events."""
        self.signal_kill()
        self.wait_exit(5.0)
        self._close_pipes()
        self.loaded = None

    def stop(self) -> None:
        """Ask Blender to quit, then make sure it did."""
        if self.alive:
            with contextlib.suppress(BlenderDied):
                self.send("quit")
            if self.wait_exit(3.0) is None:
                self.kill()
        self._close_pipes()
        self.loaded = None

    def _close_pipes(self) -> None:
        if self._sel is not None:
            self._sel.close()
            self._sel = None
        for fd in (self._cmd_w, self._evt_r):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._cmd_w = self._evt_r = None

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, offset: int, limit: int = LOG_TAIL_BYTES) -> str:
        """What Blender printed since ``offset``, at most the last ``limit`` bytes."""
        try:
            with self.log_path.open("rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                start = max(offset, size - limit)
                handle.seek(start)
                return handle.read().decode(errors="replace")
        except FileNotFoundError:
            return ""


def is_error(ev: Event) -> bool:
    return ev.kind == EV_ERROR
