"""The panel's preset menu (own and shared presets) and its cost estimate, each fetched in a background thread."""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import StringProperty

from . import core, remote
from .background import BackgroundCall, rpt
from .preferences import preferences

#: The preset menu's entries, from the last refresh (own first, then shared ones by NAME@PUBLISHER).
PRESETS: list[remote.PresetChoice] = []
#: The estimate under way, if any (one at a time: each renders metered sample frames).
_estimating: remote.Call | None = None


def preset_choice(ref: str) -> remote.PresetChoice | None:
    """The menu entry for ``ref``, when the last refresh listed it."""
    return next((p for p in PRESETS if p.ref == ref.strip()), None)


def estimating() -> bool:
    return _estimating is not None


def _connection(context: bpy.types.Context) -> tuple[str, str]:
    prefs = preferences(context)
    return core.normalise_url(prefs.farm_url), prefs.token.strip()


class RENDER_FARM_OT_refresh_presets(BackgroundCall, bpy.types.Operator):
    """Fetch your company's presets and the shared ones you may use"""

    bl_idname = "render_farm.refresh_presets"
    bl_label = "Refresh Presets"
    bl_description = "Fetch your company's presets and the shared ones you may use"

    def start(self, context: bpy.types.Context) -> remote.Call | None:
        url, token = _connection(context)
        return remote.Call(lambda: remote.fetch_presets(url, token), url, "render-farm-presets").start()

    def finish(self, context: bpy.types.Context, call: remote.Call) -> set[str]:
        tools = context.window_manager.render_farm_tools
        if call.outcome is not None:
            tools.presets_message = call.outcome.text(rpt)
            self.report({"ERROR"}, tools.presets_message)
            return {"CANCELLED"}
        PRESETS[:] = call.result
        tools.presets_message = rpt(remote.MSG_PRESETS).format(count=len(PRESETS))
        return {"FINISHED"}


class RENDER_FARM_OT_use_preset(bpy.types.Operator):
    """Use this preset for the next job"""

    bl_idname = "render_farm.use_preset"
    bl_label = "Use Preset"
    bl_description = "Use this preset for the next job"
    bl_options = {"REGISTER", "UNDO"}

    ref: StringProperty(name="Preset", default="", options={"SKIP_SAVE"})  # type: ignore[valid-type]

    @classmethod
    def description(cls, context: bpy.types.Context, properties: Any) -> str:
        choice = preset_choice(properties.ref)
        return choice.description if choice is not None else cls.bl_description

    def execute(self, context: bpy.types.Context) -> set[str]:
        context.scene.render_farm.preset = self.ref.strip()
        return {"FINISHED"}


class RENDER_FARM_MT_presets(bpy.types.Menu):
    """Own presets, then the shared ones (their tooltips say when to use them)"""

    bl_idname = "RENDER_FARM_MT_presets"
    bl_label = "Farm Presets"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        if not PRESETS:
            layout.label(text="No presets listed yet: refresh the list.", icon="INFO")
        for choice in PRESETS:
            icon = "USER" if choice.source == "own" else "WORLD" if choice.source == "platform" else "COMMUNITY"
            op = layout.operator(
                RENDER_FARM_OT_use_preset.bl_idname, text=f"{choice.ref} ({choice.source})", icon=icon, translate=False
            )
            op.ref = choice.ref
        layout.separator()
        layout.operator(RENDER_FARM_OT_use_preset.bl_idname, text="No Preset", icon="X").ref = ""
        layout.operator(RENDER_FARM_OT_refresh_presets.bl_idname, icon="FILE_REFRESH")


class RENDER_FARM_OT_estimate(BackgroundCall, bpy.types.Operator):
    """Render a few sample frames on the farm (metered like any render) and estimate the job's cost"""

    bl_idname = "render_farm.estimate"
    bl_label = "Estimate Cost"
    bl_description = "Render a few sample frames on the farm (metered like any render) and estimate the job's cost"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _estimating is None

    def start(self, context: bpy.types.Context) -> remote.Call | None:
        global _estimating
        from .operators import checked_request

        tools = context.window_manager.render_farm_tools
        if _estimating is not None:
            return None
        request, problem = checked_request(context)
        if request is None:
            tools.estimate_state, tools.estimate_job_id = "FAILED", ""
            tools.estimate_message = (problem or core.failure("error", core.MSG_FAILED, detail="")).text(rpt)
            self.report({"ERROR"}, tools.estimate_message)
            return None
        tools.estimate_state, tools.estimate_job_id = "RUNNING", ""
        tools.estimate_message = rpt(remote.MSG_ESTIMATING)
        _estimating = remote.Call(lambda: remote.estimate(request), request.url, "render-farm-estimate")
        return _estimating.start()

    def finish(self, context: bpy.types.Context, call: remote.Call) -> set[str]:
        global _estimating
        _estimating = None
        tools = context.window_manager.render_farm_tools
        outcome = call.outcome or remote.estimate_outcome(call.result)
        tools.estimate_message = outcome.text(rpt)
        tools.estimate_job_id = outcome.job_id
        if not outcome.ok:
            tools.estimate_state = "FAILED"
            self.report({"ERROR"}, tools.estimate_message)
            return {"CANCELLED"}
        tools.estimate_state = "DONE"
        self.report({"INFO"}, tools.estimate_message)
        return {"FINISHED"}


CLASSES = (RENDER_FARM_OT_refresh_presets, RENDER_FARM_OT_use_preset, RENDER_FARM_MT_presets, RENDER_FARM_OT_estimate)


def register() -> None:
    """Register the operators and the preset menu."""
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    """Unregister them; a running estimate's thread finishes on its own."""
    global _estimating
    _estimating = None
    PRESETS.clear()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
