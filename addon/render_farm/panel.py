"""The Render Farm panel in Output Properties."""

from __future__ import annotations

import bpy

from . import operators, pipeline_ops


class RENDER_FARM_PT_submit(bpy.types.Panel):
    """Job settings, the Submit button and the last submission's result."""

    bl_label = "Render Farm"
    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "output"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        settings = context.scene.render_farm
        status = context.window_manager.render_farm_status

        col = layout.column()
        col.prop(settings, "job_name", placeholder=bpy.path.display_name_from_filepath(bpy.data.filepath))
        col.prop(settings, "use_scene_range")
        sub = col.column(align=True)
        sub.active = not settings.use_scene_range
        sub.prop(settings, "frame_start")
        sub.prop(settings, "frame_end")
        sub.prop(settings, "frame_step")
        row = col.row(align=True)
        row.prop(settings, "preset")
        row.menu(pipeline_ops.RENDER_FARM_MT_presets.bl_idname, text="", icon="PRESET")
        choice = pipeline_ops.preset_choice(settings.preset) if settings.preset.strip() else None
        if choice is not None:
            for line in _wrap(choice.description, 60):
                col.label(text=line, icon="BLANK1", translate=False)
        sub = col.column()
        sub.active = not settings.preset.strip()  # a preset decides these
        sub.prop(settings, "chunk_size")
        sub.prop(settings, "priority", slider=True)
        sub.prop(settings, "device", expand=True)
        sub.prop(settings, "output_format")
        col.prop(settings, "order")
        col.prop(settings, "save_before_submit")
        col.prop(settings, "allow_missing")
        col.prop(settings, "after")
        sub = col.column()
        sub.active = bool(settings.after.strip())
        sub.prop(settings, "frame_match")

        row = layout.row()
        row.scale_y = 1.4
        row.operator(operators.RENDER_FARM_OT_submit.bl_idname, text="Submit to Farm", icon="EXPORT")

        tools = context.window_manager.render_farm_tools
        row = layout.row()
        row.operator(pipeline_ops.RENDER_FARM_OT_estimate.bl_idname, icon="FUND")
        if tools.estimate_state != "IDLE":
            icon = {"RUNNING": "TIME", "DONE": "INFO", "FAILED": "ERROR"}[tools.estimate_state]
            for i, line in enumerate(_wrap(tools.estimate_message, 60)):
                layout.label(text=line, icon=icon if i == 0 else "BLANK1", translate=False)

        submission = operators._active
        if submission is not None:
            layout.progress(factor=submission.fraction, type="BAR", text=status.message, translate=False)
        elif status.state == "DONE":
            box = layout.box()
            box.label(text=status.message, icon="CHECKMARK", translate=False)
            op = box.operator(operators.RENDER_FARM_OT_open_monitor.bl_idname, text="Open in Monitor", icon="URL")
            op.url = status.monitor_url
        elif status.state == "FAILED":
            box = layout.box()
            for i, line in enumerate(_wrap(status.message, 60)):
                box.label(text=line, icon="ERROR" if i == 0 else "BLANK1", translate=False)
            if status.missing:
                box.label(text="Missing files:", icon="FILE_IMAGE")
                for path in status.missing.splitlines():
                    box.label(text=path, icon="BLANK1", translate=False)


def _wrap(text: str, width: int) -> list[str]:
    """Split a message into lines for labels (Blender labels do not wrap)."""
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    return [*lines, current] if current else lines


def register() -> None:
    """Register the panel."""
    bpy.utils.register_class(RENDER_FARM_PT_submit)


def unregister() -> None:
    """Unregister the panel."""
    bpy.utils.unregister_class(RENDER_FARM_PT_submit)
