"""Runs INSIDE the Blender subprocess (``python -m workers.blender_child CMD_FD EVT_FD``).

Keeps one .blend loaded across chunks, renders frame by frame and reports on the event pipe. Nothing here is
imported by the farm's own processes: bpy lives only in this child.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from typing import Any, BinaryIO

from workers.protocol import (
    EV_ERROR,
    EV_FRAME,
    EV_OPENED,
    EV_READY,
    EV_STATS,
    OP_OPEN,
    OP_QUIT,
    OP_RENDER,
    event,
)

FORMATS = {"PNG": ("PNG", ".png"), "EXR": ("OPEN_EXR", ".exr")}


class Child:
    def __init__(self, events: BinaryIO) -> None:
        import bpy  # type: ignore[import-not-found,unused-ignore]

        self.bpy: Any = bpy
        self.events = events
        self.device = "CPU"
        self._last_stats = 0.0

        @bpy.app.handlers.persistent  # type: ignore[untyped-decorator,unused-ignore]
        def on_stats(*args: Any) -> None:
            # Called many times per frame: throttle so the pipe stays quiet.
            now = time.monotonic()
            if now - self._last_stats >= 0.25 and args and isinstance(args[-1], str):
                self._last_stats = now
                self.send(EV_STATS, text=args[-1])

        bpy.app.handlers.render_stats.append(on_stats)

    def send(self, kind: str, **data: Any) -> None:
        self.events.write(event(kind, **data))
        self.events.flush()

    def open(self, msg: dict[str, Any]) -> None:
        bpy = self.bpy
        started = time.monotonic()
        bpy.ops.wm.open_mainfile(filepath=msg["path"], load_ui=False)
        scene = bpy.context.scene
        settings: dict[str, Any] = msg.get("settings") or {}
        render = scene.render
        if settings.get("resolution"):
            width, height = (int(v) for v in str(settings["resolution"]).split("x"))
            render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
        fmt, _ = FORMATS[str(settings.get("output_format", "PNG"))]
        render.image_settings.file_format = fmt
        threads = int(settings.get("threads") or 0)
        if threads > 0:
            render.threads_mode, render.threads = "FIXED", threads
        self.device = "CPU"
        if render.engine == "CYCLES":
            if settings.get("samples"):
                scene.cycles.samples = int(settings["samples"])
            self.device = self._select_device(scene, settings)
        self.send(
            EV_OPENED,
            seconds=time.monotonic() - started,
            engine=render.engine,
            device=self.device,
            resolution=f"{render.resolution_x}x{render.resolution_y}",
        )

    def _select_device(self, scene: Any, settings: dict[str, Any]) -> str:
        from workers.devices import apply_to_scene, cycles_preferences, select_device

        choice = select_device(
            cycles_preferences(),
            allowed_gpu_ids=None,
            want_gpu=bool(settings.get("gpu")),
            allow_cpu_fallback=bool(settings.get("allow_cpu_fallback", True)),
        )
        apply_to_scene(scene, choice)
        if choice.kind != "CPU":
            return f"{choice.kind}:{'+'.join(choice.device_names)}"
        return "CPU"

    def render(self, msg: dict[str, Any]) -> None:
        bpy = self.bpy
        scene = bpy.context.scene
        frame = int(msg["frame"])
        path = str(msg["output"])
        scene.frame_set(frame)
        # write_still does not expand '#': the full file path is set per frame.
        scene.render.filepath = path
        started = time.monotonic()
        bpy.ops.render.render(write_still=True)
        if not os.path.exists(path):
            raise RuntimeError(f"Blender reported frame {frame} rendered but wrote no file at {path}")
        self.send(EV_FRAME, frame=frame, path=path, seconds=time.monotonic() - started, device=self.device)

    def serve(self, commands: BinaryIO) -> None:
        bpy = self.bpy
        self.send(EV_READY, version=bpy.app.version_string, pid=os.getpid())
        for line in commands:
            msg = json.loads(line)
            op = msg.get("op")
            if op == OP_QUIT:
                return
            try:
                if op == OP_OPEN:
                    self.open(msg)
                elif op == OP_RENDER:
                    self.render(msg)
                else:
                    self.send(EV_ERROR, message=f"unknown command {op!r}")
            except Exception as exc:
                sys.stdout.write(traceback.format_exc())
                sys.stdout.flush()
                self.send(
                    EV_ERROR, op=op, message=str(exc).strip() or type(exc).__name__, frame=msg.get("frame")
                )


def watch_parent() -> None:
    """Exit when the worker that started us is gone, so no Blender outlives its worker."""
    import threading

    parent = os.getppid()

    def loop() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(3)

    threading.Thread(target=loop, daemon=True, name="watch-parent").start()


def main() -> None:
    """Entry point of the Blender subprocess."""
    cmd_fd, evt_fd = int(sys.argv[1]), int(sys.argv[2])
    watch_parent()
    with os.fdopen(cmd_fd, "rb") as commands, os.fdopen(evt_fd, "wb") as events:
        Child(events).serve(commands)


if __name__ == "__main__":
    main()
