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

from farm.domain.outputs import EXTENSIONS, FORMATS, SCENE, frame_name, layer_template, scene_template
from workers.display import LINEAR_FORMATS, display_path, save_display_copy
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


def apply_output_format(image_settings: Any, fmt: str) -> str:
    """Apply the job's format override (``scene``: keep the scene's) and return the file extension.

    Blender 5 accepts a ``file_format`` only when ``media_type`` allows it, so the media type is set first. A
    video scene renders lossless PNG frames (its colour mode, 16-bit when it asks for more than 8): the video
    is encoded from them once every frame is in.
    """
    try:
        if fmt == SCENE:
            if image_settings.media_type == "VIDEO":
                mode, depth = str(image_settings.color_mode), str(image_settings.color_depth)
                image_settings.media_type = "IMAGE"
                image_settings.file_format = "PNG"
                image_settings.color_mode = mode if mode in ("BW", "RGB", "RGBA") else "RGB"
                image_settings.color_depth = "8" if depth == "8" else "16"
                image_settings.compression = 15
        else:
            if fmt not in FORMATS:
                raise SceneFault(f"output format {fmt!r} is not supported; use one of {', '.join(FORMATS)}")
            media, file_format, _ = FORMATS[fmt]
            image_settings.media_type = media
            image_settings.file_format = file_format
    except (TypeError, ValueError, AttributeError) as exc:
        raise SceneFault(f"the scene opened, but its output cannot be set to {fmt}: {_one_line(exc)}") from exc
    ext = EXTENSIONS.get(str(image_settings.file_format))
    if ext is None:
        raise SceneFault(
            f"the scene's output format {image_settings.file_format} is not one the farm stores; "
            f"submit with --format {'|'.join(FORMATS)}"
        )
    return ext


def choose_view_layers(scene: Any, wanted: list[str]) -> list[str]:
    """Enable only the ``wanted`` view layers (none given: the scene's enabled ones); returns those rendered."""
    names = [layer.name for layer in scene.view_layers]
    unknown = [name for name in wanted if name not in names]
    if unknown:
        raise SceneFault(f"no view layer {', '.join(map(repr, unknown))} in scene {scene.name!r}; it has {names}")
    if wanted:
        for layer in scene.view_layers:
            layer.use = layer.name in wanted
    used = [layer.name for layer in scene.view_layers if layer.use]
    if not used:
        raise SceneFault(f"scene {scene.name!r} has no enabled view layer to render (it has {names})")
    return used


def choose_camera(scene: Any, wanted: object) -> Any:
    """The camera object named ``wanted`` (None: keep the scene's camera and its markers)."""
    if not wanted:
        return None
    cameras = sorted(o.name for o in scene.objects if o.type == "CAMERA")
    camera = scene.objects.get(str(wanted))
    if camera is None or camera.type != "CAMERA":
        raise SceneFault(f"no camera {wanted!r} in scene {scene.name!r}; its cameras are {cameras}")
    # Markers bound to cameras would switch back at each frame (render does it too): unbind them in this
    # session's copy of the scene (the file is never saved).
    for marker in scene.timeline_markers:
        marker.camera = None
    scene.camera = camera
    return camera


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
        # What the open scene renders to (set by ``open``).
        self.ext = ".png"
        self.template = ""
        self.layers: list[str] = []
        self.camera: Any = None
        self.job_name = ""
        self.per_layer = False  # one file per view layer
        self.display = False  # the frames hold scene-linear light: save a display-referred copy of each

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
        # A studio's .blend may carry Python (registered text blocks, driver expressions, handlers): never run
        # it. Off explicitly, not by Blender's default, which a user preference could change.
        bpy.context.preferences.filepaths.use_scripts_auto_execute = False
        try:
            bpy.ops.wm.open_mainfile(filepath=msg["path"], load_ui=False, use_scripts=False)
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
        scene_media = str(render.image_settings.media_type)
        fmt = str(settings.get("output_format") or SCENE)
        self.ext = apply_output_format(render.image_settings, fmt)
        self.display = str(render.image_settings.file_format) in LINEAR_FORMATS
        self.template = str(settings.get("output_pattern") or scene_template(render.filepath))
        self.layers = choose_view_layers(scene, [str(n) for n in settings.get("view_layers") or []])
        self.camera = choose_camera(scene, settings.get("camera"))
        self.job_name = str(settings.get("job_name") or os.path.splitext(os.path.basename(msg["path"]))[0])
        # A single-layer format holds one view layer: several are written one file each, unless the scene's
        # compositor combines them into the one image it means, or the frames are a video's (as a local render
        # would write them).
        composited = bool(render.use_compositing) and getattr(scene, "compositing_node_group", None) is not None
        multilayer = render.image_settings.media_type == "MULTI_LAYER_IMAGE"
        video = scene_media == "VIDEO" and fmt == SCENE
        self.per_layer = len(self.layers) > 1 and not (multilayer or composited or video)
        if self.per_layer:
            self.template = layer_template(self.template)
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
            media_type=scene_media,
            file_format=render.image_settings.file_format,
            ext=self.ext,
            template=self.template,
            view_layers=self.layers,
            per_layer=self.per_layer,
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
        # frame_set also switches to the camera a timeline marker binds to this frame.
        scene.frame_set(frame)
        if self.camera is not None:
            scene.camera = self.camera
        camera = scene.camera.name if scene.camera is not None else ""
        started = time.monotonic()
        files: list[dict[str, str]] = []
        if not self.per_layer:
            layer = self.layers[0] if len(self.layers) == 1 else "all"
            files.append(self._write(msg, frame, layer, camera))
        else:
            try:
                for layer in self.layers:
                    for view_layer in scene.view_layers:
                        view_layer.use = view_layer.name == layer
                    files.append(self._write(msg, frame, layer, camera))
            finally:
                for view_layer in scene.view_layers:
                    view_layer.use = view_layer.name in self.layers
        self.send(
            EV_FRAME,
            frame=frame,
            path=files[0]["path"],
            name=files[0]["name"],
            display=files[0]["display"],
            files=files if self.per_layer else [],
            camera=camera,
            seconds=time.monotonic() - started,
            device=self.device,
        )

    def _write(self, msg: dict[str, Any], frame: int, layer: str, camera: str) -> dict[str, str]:
        """Render the frame (the view layers enabled now) into its file; returns the file's layer, name, path and
        the path of its display-referred copy (empty when it needs none or Blender could not save one)."""
        name = frame_name(
            self.template,
            frame=frame,
            ext=self.ext,
            job=str(msg.get("job", "")),
            name=self.job_name,
            layer=layer,
            camera=camera,
        )
        path = os.path.join(str(msg["out_dir"]), name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        # write_still does not expand '#' (and would append an extension): the full file path is set per frame.
        self.bpy.context.scene.render.filepath = path
        self.bpy.ops.render.render(write_still=True)
        if not os.path.exists(path):
            raise RuntimeError(f"Blender reported frame {frame} rendered but wrote no file at {path}")
        display = ""
        if self.display:
            copy = display_path(str(msg["out_dir"]), name)
            if save_display_copy(self.bpy, self.bpy.context.scene, copy):
                display = str(copy)
        return {"layer": layer, "name": name, "path": path, "display": display}

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
