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


class SceneFault(Exception):
    """The scene or the job cannot render as given: retrying elsewhere would not help."""


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:2000]


def missing_inputs(bpy: Any, job_dir: str) -> list[str]:
    """Files the open scene refers to that are not there, as Blender sees them after opening (images, linked
    libraries, sounds, fonts, movie clips, caches, volumes); paths inside the job folder are made relative."""
    found: set[str] = set()

    def check(filepath: str, library: Any = None) -> None:
        path = os.path.normpath(bpy.path.abspath(filepath, library=library))
        if not os.path.exists(path):
            rel = os.path.relpath(path, job_dir)
            found.add(path if rel.startswith("..") else rel)

    for lib in bpy.data.libraries:
        if lib.filepath:
            check(lib.filepath)
    for img in bpy.data.images:
        if img.source not in {"FILE", "SEQUENCE", "TILED", "MOVIE"} or img.packed_file is not None:
            continue
        if img.filepath and not (img.source == "TILED" and "<UDIM>" in img.filepath):  # tiles: Blender reports
            check(img.filepath, img.library)
    for collection in (bpy.data.sounds, bpy.data.fonts, bpy.data.movieclips):
        for item in collection:
            filepath = getattr(item, "filepath", "")
            if filepath and filepath != "<builtin>" and getattr(item, "packed_file", None) is None:
                check(filepath, item.library)
    for item in (*bpy.data.cache_files, *bpy.data.volumes):
        filepath = getattr(item, "filepath", "")
        # A sequence ("#", "<frame>") names one file per frame: Blender reports those itself.
        if filepath and getattr(item, "packed_file", None) is None and "#" not in filepath and "<" not in filepath:
            check(filepath, item.library)
    return sorted(found)


class Child:
    def __init__(self, events: BinaryIO) -> None:
        import bpy  # type: ignore[import-not-found,unused-ignore]

        self.bpy: Any = bpy
        self.events = events
        self.device = "CPU"
        self._last_stats = 0.0
        # The attempt whose command is being carried out: every event names it, so the worker can refuse
        # anything that belongs to another attempt.
        self.attempt = ""

        @bpy.app.handlers.persistent  # type: ignore[untyped-decorator,unused-ignore]
        def on_stats(*args: Any) -> None:
            # Called many times per frame: throttle so the pipe stays quiet.
            now = time.monotonic()
            if now - self._last_stats >= 0.25 and args and isinstance(args[-1], str):
                self._last_stats = now
                self.send(EV_STATS, text=args[-1])

        bpy.app.handlers.render_stats.append(on_stats)

    def send(self, kind: str, **data: Any) -> None:
        self.events.write(event(kind, attempt=self.attempt, **data))
        self.events.flush()

    def open(self, msg: dict[str, Any]) -> None:
        bpy = self.bpy
        started = time.monotonic()
        try:
            bpy.ops.wm.open_mainfile(filepath=msg["path"], load_ui=False)
        except RuntimeError as exc:
            raise SceneFault(f"Blender cannot open {os.path.basename(msg['path'])}: {_one_line(exc)}") from exc
        scene = bpy.context.scene
        if scene.camera is None:
            raise SceneFault(f"scene {scene.name!r} has no active camera: set one (Scene properties > Camera)")
        settings: dict[str, Any] = msg.get("settings") or {}
        render = scene.render
        if settings.get("resolution"):
            width, height = (int(v) for v in str(settings["resolution"]).split("x"))
            render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
        fmt, _ = FORMATS[str(settings.get("output_format", "PNG"))]
        try:
            render.image_settings.file_format = fmt
        except (TypeError, ValueError, AttributeError) as exc:
            raise SceneFault(f"invalid output settings: {_one_line(exc)}") from exc
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
            missing=missing_inputs(bpy, os.path.dirname(msg["path"])),
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
            self.attempt = str(msg.get("attempt", ""))
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
                # A Python-level error in Blender (the process lives on) comes from the scene or the job:
                # the device and node faults that matter kill the process or name the device.
                self.send(
                    EV_ERROR,
                    op=op,
                    message=_one_line(exc) or type(exc).__name__,
                    frame=msg.get("frame"),
                    fault="scene" if isinstance(exc, SceneFault) else "",
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
