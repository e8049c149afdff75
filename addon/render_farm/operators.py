"""Submit and Open in monitor.

``render_farm.submit`` invoked from the UI runs the upload in a background thread and polls it from a timer, so
Blender stays responsive while a large scene uploads; the status bar shows the phase and a progress bar. Called
from a script (``execute``), it runs the same background submission and waits for it: that is what tests and
batch tools use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy
from bpy.props import StringProperty

from . import core
from .preferences import preferences

_active: core.Submission | None = None
LAST_SUBMISSION: core.Submission | None = None


def _rpt(text: str) -> str:
    """Translate a report message (Blender's report context) into the UI language."""
    return bpy.app.translations.pgettext_rpt(text)


def _iface(text: str) -> str:
    return bpy.app.translations.pgettext_iface(text)


def _redraw(context: bpy.types.Context) -> None:
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            area.tag_redraw()


def _draw_status_bar(header: bpy.types.Header, context: bpy.types.Context) -> None:
    submission = _active
    if submission is None:
        return
    text = submission.status_text(_iface)
    if submission.total:
        header.layout.progress(factor=submission.fraction, type="BAR", text=text, translate=False)
    else:
        header.layout.label(text=text, icon="EXPORT", translate=False)


def build_request(context: bpy.types.Context) -> core.SubmitRequest:
    """The job the panel describes (the same for Submit and Estimate Cost)."""
    settings = context.scene.render_farm
    scene = context.scene
    if settings.use_scene_range:
        frames = core.frames_spec(scene.frame_start, scene.frame_end, scene.frame_step)
    else:
        frames = core.frames_spec(settings.frame_start, settings.frame_end, settings.frame_step)
    prefs = preferences(context)
    blend = Path(bpy.data.filepath)
    return core.SubmitRequest(
        url=core.normalise_url(prefs.farm_url),
        token=prefs.token.strip(),
        blend=blend,
        frames=frames,
        name=settings.job_name.strip() or blend.stem,
        chunk_size=settings.chunk_size,
        priority=settings.priority,
        gpu=settings.device == "GPU",
        output_format=settings.output_format,
        allow_missing=settings.allow_missing,
        after=core.job_ids(settings.after),
        frame_match=settings.frame_match and bool(settings.after.strip()),
        preset=settings.preset.strip(),
        order=settings.order,
    )


def checked_request(context: bpy.types.Context) -> tuple[core.SubmitRequest | None, core.Outcome | None]:
    """The panel's job once the file, the camera and the settings pass, the file saved when asked; else what to
    fix. Everything is checked before the file is saved: a refused request leaves the scene as it was."""
    if not bpy.data.filepath:
        return None, core.failure("unsaved", core.MSG_UNSAVED)
    request = build_request(context)
    if context.scene.camera is None:
        return None, core.failure("no_camera", core.MSG_NO_CAMERA)
    try:
        problem = core.check_request(request)
    except ImportError as exc:
        return None, core.failure("no_client", core.MSG_NO_CLIENT, detail=str(exc))
    if problem is not None:
        return None, problem
    if bpy.data.is_dirty:
        if not context.scene.render_farm.save_before_submit:
            return None, core.failure("unsaved_changes", core.MSG_DIRTY)
        bpy.ops.wm.save_mainfile()
    return request, None


class RENDER_FARM_OT_submit(bpy.types.Operator):
    """Pack the scene with its textures, upload what the farm lacks and submit a render job"""

    bl_idname = "render_farm.submit"
    bl_label = "Submit to Farm"
    bl_description = "Pack the scene with its textures, upload what the farm lacks and submit a render job"
    bl_options = {"REGISTER"}

    _timer: Any = None

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _active is None

    # ---- script / test entry: same background thread, waited for -------------------------------------------
    def execute(self, context: bpy.types.Context) -> set[str]:
        submission = self._begin(context)
        if submission is None:
            return {"CANCELLED"}
        outcome = submission.wait()
        return self._end(context, submission, outcome)

    # ---- UI entry: background thread polled by a timer ------------------------------------------------------
    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if context.window is None:
            return self.execute(context)
        submission = self._begin(context)
        if submission is None:
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        context.workspace.status_text_set(_draw_status_bar)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        submission = _active
        if event.type != "TIMER" or submission is None:
            return {"PASS_THROUGH"}
        status = context.window_manager.render_farm_status
        status.progress = submission.fraction
        status.message = submission.status_text(_iface)
        _redraw(context)
        if not submission.done:
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        context.workspace.status_text_set(None)
        return self._end(context, submission, submission.outcome)

    # ---- shared -----------------------------------------------------------------------------------------------
    def _fail(self, context: bpy.types.Context, outcome: core.Outcome) -> None:
        status = context.window_manager.render_farm_status
        status.state, status.kind, status.job_id, status.monitor_url = "FAILED", outcome.kind, "", ""
        status.message = outcome.text(_rpt)
        status.missing = "\n".join(outcome.missing)
        self.report({"ERROR"}, status.message)

    def _begin(self, context: bpy.types.Context) -> core.Submission | None:
        """Check the file, save it when asked, and start the background submission (None: refused)."""
        global _active
        if _active is not None:
            self._fail(context, core.failure("busy", core.MSG_BUSY))
            return None
        request, problem = checked_request(context)
        if request is None:
            self._fail(context, problem or core.failure("error", core.MSG_FAILED, detail="no request"))
            return None
        status = context.window_manager.render_farm_status
        status.state, status.kind, status.job_id, status.missing, status.progress = "RUNNING", "", "", "", 0.0
        _active = core.Submission(request)
        status.message = _active.status_text(_iface)
        return _active.start()

    def _end(self, context: bpy.types.Context, submission: core.Submission, outcome: core.Outcome | None) -> set[str]:
        global _active, LAST_SUBMISSION
        _active = None
        LAST_SUBMISSION = submission  # what was sent, for whoever looks afterwards (tests, a resubmit)
        _redraw(context)
        if outcome is None:
            outcome = core.failure("error", core.MSG_FAILED, detail="the submission thread ended without a result")
        if not outcome.ok:
            self._fail(context, outcome)
            return {"CANCELLED"}
        status = context.window_manager.render_farm_status
        status.state, status.kind, status.progress = "DONE", "ok", 1.0
        status.job_id, status.monitor_url = outcome.job_id, outcome.monitor_url
        status.message = outcome.text(_rpt)
        status.missing = "\n".join(outcome.missing)
        self.report({"INFO"}, status.message)
        return {"FINISHED"}


class RENDER_FARM_OT_open_monitor(bpy.types.Operator):
    """Open the submitted job in the farm's web monitor"""

    bl_idname = "render_farm.open_monitor"
    bl_label = "Open in Monitor"
    bl_description = "Open the submitted job in the farm's web monitor"

    url: StringProperty(name="URL", default="", options={"SKIP_SAVE"})  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> set[str]:
        url = self.url or context.window_manager.render_farm_status.monitor_url
        if not url:
            return {"CANCELLED"}
        bpy.ops.wm.url_open(url=url)
        return {"FINISHED"}


CLASSES = (RENDER_FARM_OT_submit, RENDER_FARM_OT_open_monitor)


def register() -> None:
    """Register the operators."""
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    """Unregister the operators; a running submission's thread finishes on its own."""
    global _active
    _active = None
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
